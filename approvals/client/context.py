"""Run, thread and agent ids shared by every approval and event inside ``client.run()``."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

IDS = ("run_id", "thread_id", "agent_id")


@dataclass(frozen=True)
class RunIds:
    """The ids that group a run's events and approvals."""

    run_id: str | None = None
    thread_id: str | None = None
    agent_id: str | None = None

    def merged(self, **overrides: str | None) -> dict[str, str | None]:
        """These ids with per-call overrides (``None`` keeps the current one)."""
        return {
            name: overrides.get(name) if overrides.get(name) is not None else getattr(self, name)
            for name in IDS
        }


_current: contextvars.ContextVar[RunIds | None] = contextvars.ContextVar(
    "approvals_run", default=None
)


def current(defaults: RunIds) -> RunIds:
    """The innermost ``run()`` ids over the client's defaults."""
    inner = _current.get()
    if inner is None:
        return defaults
    return RunIds(**defaults.merged(**inner.merged()))


@contextmanager
def run(
    defaults: RunIds,
    run_id: str | None = None,
    thread_id: str | None = None,
    agent_id: str | None = None,
) -> Iterator[RunIds]:
    """Set the ids for the block; a ``run_id`` is made up when none is set."""
    outer = current(defaults)
    ids = replace(
        outer,
        **{
            k: v
            for k, v in {"run_id": run_id, "thread_id": thread_id, "agent_id": agent_id}.items()
            if v is not None
        },
    )
    if ids.run_id is None:
        ids = replace(ids, run_id=f"run_{uuid.uuid4().hex[:12]}")
    token = _current.set(ids)
    try:
        yield ids
    finally:
        _current.reset(token)
