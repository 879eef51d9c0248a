"""The append-only event log, its broker and its SSE stream."""
