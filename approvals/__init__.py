"""A human-in-the-loop approval service for AI agents."""

__version__ = "0.1.0"
