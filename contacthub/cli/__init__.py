"""The `contacthub` command line."""
