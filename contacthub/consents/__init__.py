"""Consents, their texts and revisions, and contacts' agreements."""
