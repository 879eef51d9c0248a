"""``approvals export``: the event log (audit included) to NDJSON or CSV, over the HTTP API.

It reads ``GET /v1/events?format=ndjson``, which streams the matching log up to the
moment of the request. Lines are written as they arrive; if the connection drops, the
export goes on after the last event written, and an export stopped for good says the
``--after`` that resumes it.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, TextIO

import httpx
import typer
from rich.progress import BarColumn, Progress, TextColumn

from approvals.client.decision import ApprovalsError
from approvals.client.transport import api_error, settings, transport_error

COLUMNS = [
    "id",
    "createdAt",
    "type",
    "category",
    "status",
    "title",
    "source",
    "agentId",
    "threadId",
    "runId",
    "externalId",
    "approvalId",
    "resolvedBy",
    "resolvedAt",
    "costTokens",
    "costUsd",
    "detail",
]
RETRIES = 5


def events(
    url: str | None, key: str | None, query: dict[str, str], after: int
) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Every exported event (its line as sent, decoded) with the log head at the request,
    resuming after a dropped connection from the last event given."""
    base, headers = settings(url, key)
    tries = 0
    with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30)) as http:
        while True:
            params = {**query, "format": "ndjson", "after": str(after)}
            try:
                with http.stream("GET", "/v1/events", params=params) as answer:
                    if answer.status_code != 200:
                        answer.read()
                        raise api_error(answer)
                    head = int(answer.headers.get("x-log-head") or 0)
                    for line in answer.iter_lines():
                        if line:
                            event = json.loads(line)
                            after = int(event["id"])
                            tries = 0
                            yield line, event, head
                    return
            except httpx.HTTPError as exc:
                tries += 1
                if tries > RETRIES:
                    raise transport_error(exc) from exc


def row(event: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the event's fields, ``detail`` as JSON."""
    out = {name: event.get(name) for name in COLUMNS}
    out["detail"] = (
        json.dumps(event.get("detail"), ensure_ascii=False) if event.get("detail") else ""
    )
    return out


def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="ndjson (one event per line) or csv.")
    ] = "ndjson",
    since: Annotated[
        str | None, typer.Option(help="Only events created at or after (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only events created before (ISO 8601).")
    ] = None,
    after: Annotated[int, typer.Option(help="Resume after this event id.", min=0)] = 0,
    type_: Annotated[
        str | None, typer.Option("--type", help="Only these types (comma-separated).")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Only these categories.")] = None,
    source: Annotated[str | None, typer.Option(help="Only these sources.")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="Only these agents.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only these runs.")] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="APPROVALS_URL", help="The service (http://127.0.0.1:8000)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", envvar="APPROVALS_KEY", help="A key with events:read.", show_default=False
        ),
    ] = None,
) -> None:
    """Export the event log (audit events included) as NDJSON or CSV, for a SIEM or a
    spreadsheet. Progress shows on a terminal; an interrupted export says how to resume."""
    if format_ not in ("ndjson", "csv"):
        typer.echo("error: --format must be ndjson or csv", err=True)
        raise typer.Exit(2)
    query = {
        name: value
        for name, value in {
            "type": type_,
            "category": category,
            "source": source,
            "agent_id": agent_id,
            "run_id": run_id,
            "since": since,
            "until": until,
        }.items()
        if value
    }
    written = after
    with ExitStack() as stack:
        sink: TextIO = (
            stack.enter_context(output.open("a" if after else "w", encoding="utf-8", newline=""))
            if output is not None
            else sys.stdout
        )
        writer = csv.DictWriter(sink, fieldnames=COLUMNS) if format_ == "csv" else None
        if writer is not None and not after:
            writer.writeheader()
        progress = (
            Progress(
                TextColumn("exporting"),
                BarColumn(),
                TextColumn("event {task.completed}/{task.total}"),
                transient=True,
            )
            if sys.stderr.isatty() and output is not None
            else None
        )
        task = None
        if progress is not None:
            stack.enter_context(progress)
        try:
            for line, event, head in events(url, key, query, after):
                if writer is not None:
                    writer.writerow(row(event))
                else:
                    sink.write(line + "\n")  # the service's canonical JSON, as sent
                written = int(event["id"])
                if progress is not None:
                    if task is None:
                        task = progress.add_task("export", total=head, completed=after)
                    progress.update(task, completed=written)
        except ApprovalsError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            if written > after:
                typer.echo(f"resume with: approvals export --after {written} …", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo(f"\nstopped; resume with: approvals export --after {written} …", err=True)
            raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add ``export`` to the command line."""
    app.command("export")(export)
