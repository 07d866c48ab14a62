"""Contact groups: every change to a group or its members goes through here (being written)."""
