"""Contact groups: static lists and dynamic segments defined by a condition tree.

`conditions` parses and checks the condition language (docs/groups.md), `compiler` turns a
condition into SQL over the contacts table; `service` is where every change to a group or its
members goes, `membership` the live job that keeps dynamic groups exact (`queue` its queue).
"""
