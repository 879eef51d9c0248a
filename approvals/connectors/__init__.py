"""Connectors: subscribe to agent platforms' SSE streams and map their dialects."""
