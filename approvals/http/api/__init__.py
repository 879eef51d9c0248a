"""The /v1 API routes and the channels' callbacks, thin over the domain modules."""
