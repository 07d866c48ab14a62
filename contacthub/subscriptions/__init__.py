"""Public subscriptions: double opt-in and the preference page."""
