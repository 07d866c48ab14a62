"""Admin users: accounts, sign-in with lock-out, browser sessions and management API tokens."""
