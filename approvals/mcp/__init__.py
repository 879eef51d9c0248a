"""Approvals for MCP tools and Claude Code, with no agent code: a gate, a server, a hook.

Everything here is a client of the service's HTTP API (through ``approvals.client``)
and imports no server module; ``approvals[mcp]`` installs the MCP SDK it needs.
"""
