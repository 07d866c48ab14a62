"""The management REST API under /api/: everything the admin UI and the CLI can do."""
