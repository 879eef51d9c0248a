"""Everything that leaves the service: the outbox, the delivery worker, webhooks and channels."""
