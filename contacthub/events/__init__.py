"""Events out: the transactional outbox, outgoing webhooks, their endpoints (docs/webhooks.md)."""
