"""Contact groups: static lists and live segments defined by conditions (docs/groups.md)."""
