"""The audit log: who exported, erased, created, revoked … what, and when."""
