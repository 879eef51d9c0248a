"""Who has a request page open, per process, with a wake-up for the pages' streams."""

from __future__ import annotations

import asyncio
import itertools


class Presence:
    """Viewers of each request page: joined when its stream opens, left when it closes."""

    def __init__(self) -> None:
        self._viewers: dict[str, dict[int, str]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._tokens = itertools.count(1)

    def join(self, approval_id: str, user: str) -> int:
        """Count ``user`` as viewing; return the token that ``leave`` takes."""
        token = next(self._tokens)
        self._viewers.setdefault(approval_id, {})[token] = user
        self._signal(approval_id)
        return token

    def leave(self, approval_id: str, token: int) -> None:
        """Forget one viewing page."""
        viewers = self._viewers.get(approval_id, {})
        viewers.pop(token, None)
        if not viewers:
            self._viewers.pop(approval_id, None)
        self._signal(approval_id)

    def viewers(self, approval_id: str) -> list[str]:
        """The distinct users viewing the page, sorted."""
        return sorted(set(self._viewers.get(approval_id, {}).values()))

    def changed(self, approval_id: str) -> asyncio.Event:
        """An event set at the next change of the page's viewers (take it before reading)."""
        return self._changed.setdefault(approval_id, asyncio.Event())

    def _signal(self, approval_id: str) -> None:
        event = self._changed.pop(approval_id, None)
        if event is not None:
            event.set()


PRESENCE = Presence()
