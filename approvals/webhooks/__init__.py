"""Outbound webhooks: endpoints, a durable outbox, signed and retried delivery."""
