"""Rows as typed structs for the templates: the shapes the API answers with.

Templates read an approval as an ``ApprovalOut`` (``a.min_approvals``, ``a.expires_at``)
and an event as an ``EventOut`` (``e.created_at``), the structs of the typed contract,
instead of wire dicts. A renamed field is then a mypy error in the Python that builds or
reads them and, with ``StrictUndefined``, an error in a template, never an empty cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from approvals.events import redaction
from approvals.events.schema import EventOut, shown
from approvals.queue.schema import ApprovalOut


def approval(row: Mapping[str, Any]) -> ApprovalOut:
    """An approval's JSON (``service.fetch``, ``approval_json``) as the struct templates get:
    as people see it, its arguments redacted by its policy."""
    return msgspec.convert(redaction.approval(dict(row)), type=ApprovalOut, strict=True)


def approvals(rows: Iterable[Mapping[str, Any]]) -> list[ApprovalOut]:
    """Several approvals as structs."""
    return [approval(row) for row in rows]


def event(row: Mapping[str, Any]) -> EventOut:
    """An event's canonical JSON as the struct templates get (redacted as people see it)."""
    json = row if isinstance(row, dict) else dict(row)
    return msgspec.convert(shown(json), type=EventOut, strict=True)


def events(rows: Iterable[Mapping[str, Any]]) -> list[EventOut]:
    """Several events as structs."""
    return [event(row) for row in rows]
