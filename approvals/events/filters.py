"""Stream and page filters: comma-separated lists matched in SQL and in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, true

from approvals.events.models import Event

# query parameter -> (canonical JSON key, column)
FIELDS: dict[str, tuple[str, Any]] = {
    "thread_id": ("threadId", Event.__table__.c.thread_id),  # type: ignore[attr-defined]
    "run_id": ("runId", Event.__table__.c.run_id),  # type: ignore[attr-defined]
    "agent_id": ("agentId", Event.__table__.c.agent_id),  # type: ignore[attr-defined]
    "source": ("source", Event.__table__.c.source),  # type: ignore[attr-defined]
    "category": ("category", Event.__table__.c.category),  # type: ignore[attr-defined]
    "type": ("type", Event.__table__.c.type),  # type: ignore[attr-defined]
    "status": ("status", Event.__table__.c.status),  # type: ignore[attr-defined]
}


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: for each field, the values it accepts."""

    wanted: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, str | None]) -> EventFilter:
        """Build a filter from query parameters (each a comma-separated list)."""
        wanted = []
        for name in FIELDS:
            raw = params.get(name)
            if raw:
                values = frozenset(part.strip() for part in raw.split(",") if part.strip())
                if values:
                    wanted.append((name, values))
        return cls(tuple(wanted))

    def matches(self, event: dict[str, Any]) -> bool:
        """Tell whether a canonical event passes the filter."""
        # A plain loop: this runs per event per subscriber, and all() over a generator is slower.
        for name, values in self.wanted:  # noqa: SIM110
            if event.get(FIELDS[name][0]) not in values:
                return False
        return True

    def where(self) -> ColumnElement[bool]:
        """The filter as a SQL condition."""
        if not self.wanted:
            return true()
        return and_(*(FIELDS[name][1].in_(sorted(values)) for name, values in self.wanted))

    def describe(self) -> dict[str, list[str]]:
        """The filter as JSON, for the stream's ``connected`` message."""
        return {name: sorted(values) for name, values in self.wanted}
