"""Storage: engines and sessions, the schema, migrations and the group-commit writer."""
