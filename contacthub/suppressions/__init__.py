"""The suppression list: addresses nothing is sent to, across all newsletters."""
