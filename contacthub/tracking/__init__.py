"""The headless tracking REST API (SPEC §2), wire-compatible with the seed."""
