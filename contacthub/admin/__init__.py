"""The admin web UI under /admin/: server-rendered pages, one module per area."""
