"""Channels (connected applications) and their API keys."""
