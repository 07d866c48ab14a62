"""Contacts and their fields."""
