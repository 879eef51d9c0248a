"""AG-UI run streams: ``RUN_STARTED``, ``STATE_SNAPSHOT``, ``RUN_FINISHED`` and kin.

Events carry no ids, and a finished run replays from its start, so the
external id is the run id and the event's position in the run. Types are
kept as AG-UI names them.
"""

from __future__ import annotations

from typing import Any

from approvals.connectors.dialects import DialectError, Mapped, Upstream, load_object, text

STATUS = {"RUN_STARTED": "running", "RUN_FINISHED": "completed", "RUN_ERROR": "failed"}


class AgUi:
    """A run's event stream (``GET /v1/runs/{run_id}/stream``)."""

    name = "agui"

    def to_events(self, msg: Upstream) -> Mapped:
        """Map one AG-UI event; RUN_FINISHED and RUN_ERROR end the run."""
        data = load_object(msg)
        kind = msg.event if msg.event != "message" else text(data.get("type"))
        if not kind:
            raise DialectError("an AG-UI event has no type")
        run = text(data.get("run_id")) or text(data.get("runId"))
        if run is None:
            raise DialectError(f"{kind}: an AG-UI event has no run id")
        event: dict[str, Any] = {
            "type": kind,
            "category": "error" if kind == "RUN_ERROR" else "lifecycle",
            "status": STATUS.get(kind),
            "title": kind.replace("_", " ").capitalize(),
            "runId": run,
            "threadId": text(data.get("thread_id")) or text(data.get("threadId")),
            "externalId": f"{run}:{msg.position}",
            "detail": data,
        }
        return Mapped([event], cursor=None, end_of_run=kind in ("RUN_FINISHED", "RUN_ERROR"))
