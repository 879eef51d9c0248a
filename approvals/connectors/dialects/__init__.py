"""Dialects: pure mappings from one upstream SSE message to canonical events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Upstream:
    """One SSE message as received from a platform."""

    event: str  # the SSE event name; "message" when the frame had none
    data: str  # the raw data text (may be invalid JSON)
    id: str | None  # the SSE id field, or None
    position: int  # 0-based index among data messages on the current connection


@dataclass(frozen=True)
class Mapped:
    """What one upstream message becomes."""

    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None  # the upstream id to resume after; None leaves it unchanged
    end_of_run: bool = False  # the stream is expected to close normally after this


class DialectError(ValueError):
    """Bad upstream data (invalid JSON, a missing id): logged and skipped."""


class Dialect(Protocol):
    """A platform's event format."""

    name: str

    def to_events(self, msg: Upstream) -> Mapped:
        """Map one upstream message."""
        ...


def load_json(msg: Upstream) -> Any:
    """The message's data as JSON, or DialectError."""
    try:
        return json.loads(msg.data)
    except ValueError as exc:
        raise DialectError(f"{msg.event}: data is not valid JSON") from exc


def load_object(msg: Upstream) -> dict[str, Any]:
    """The message's data as a JSON object, or DialectError."""
    value = load_json(msg)
    if not isinstance(value, dict):
        raise DialectError(f"{msg.event}: data is not a JSON object")
    return value


def obj(value: Any) -> dict[str, Any]:
    """A JSON object field, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    """A string field, or None for anything else."""
    return value if isinstance(value, str) and value else None


def _registry() -> dict[str, Dialect]:
    from approvals.connectors.dialects import agent_events, agui, brainroad, cerca, prism

    return {
        "prism": prism.Prism(),
        "agent-events": agent_events.AgentEvents(),
        "agui": agui.AgUi(),
        "cerca": cerca.Cerca(),
        "brainroad": brainroad.Brainroad(),
    }


DIALECTS: dict[str, Dialect] = _registry()
