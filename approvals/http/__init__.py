"""The HTTP edge: the guard, the fast path, SSE, the OpenAPI document and the API routes."""
