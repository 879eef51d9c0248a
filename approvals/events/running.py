"""What the parts of a running service share, as a protocol the layers below it can name.

``approvals.services.Services`` is the one implementation; a module below it asks for
this (or a protocol extending it) instead of importing the composition root upwards.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core.beats import Beats
from approvals.core.config import Settings
from approvals.events.broker import Broker
from approvals.events.log import EventLog


class Running(Protocol):
    """Settings, engine, log, broker and the loops' beats of one service process."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def log(self) -> EventLog: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def beats(self) -> Beats: ...
