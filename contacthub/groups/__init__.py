"""Contact groups: static lists and dynamic segments defined by a condition tree.

`conditions` parses and checks the condition language (docs/groups.md), `compiler` turns a
condition into SQL over the contacts table.
"""
