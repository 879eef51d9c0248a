"""The terminal inbox: ``approvals pending``, ``show``, ``approve``, ``reject``, ``answer``.

Each command talks to the HTTP API (``APPROVALS_URL``, ``APPROVALS_KEY``) through
``approvals.client``, so it works against a remote service as well as a local one.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from approvals.choices import grant_choice
from approvals.client import Approvals, ApprovalsError, Decision
from approvals.mcp import elicitation

Url = Annotated[
    str | None,
    typer.Option("--url", envvar="APPROVALS_URL", help="The service (http://127.0.0.1:8000)."),
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="APPROVALS_KEY", help="An API key.", show_default=False),
]
Id = Annotated[str, typer.Argument(help="The approval's id (apr_…).")]


def _client(url: str | None, key: str | None) -> Approvals:
    return Approvals(url, key)


def _fail(exc: ApprovalsError) -> typer.Exit:
    typer.echo(f"error: {exc.message}" + (f" ({exc.field})" if exc.field else ""), err=True)
    return typer.Exit(1)


def _oneline(value: Any, width: int) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pending(
    url: Url = None,
    key: Key = None,
    run_id: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    agent_id: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON list.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Redraw the queue as it changes (Ctrl-C ends).")
    ] = False,
) -> None:
    """List the pending approvals, oldest first; with --follow, live from the inbox feed."""
    filters = {k: v for k, v in {"run_id": run_id, "agent_id": agent_id}.items() if v}
    if follow:
        _follow(url, key, filters)
        return
    with _client(url, key) as client:
        try:
            rows = client.pending(**filters)
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("Nothing is waiting for a decision.")
        return
    _table(rows)


def _table(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        typer.echo(
            f"{row['id']}  {row['createdAt'][:19].replace('T', ' ')}  "
            f"{_oneline(row.get('tool') or '-', 20):20}  {_oneline(row['title'], 70)}"
        )
    typer.echo(f"{len(rows)} pending")


def _follow(url: str | None, key: str | None, filters: dict[str, str]) -> None:
    """Redraw the queue after the snapshot and after each change, until interrupted."""
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    with _client(url, key) as client:
        feed = client.inbox(**filters)
        try:
            for change in feed:
                rows = sorted(feed.pending.values(), key=lambda a: int(a["requestEventId"]))
                stamp = f"as of event {change.position} ({change.kind})"
                typer.echo(f"{clear}{stamp}", nl=True)
                if rows:
                    _table(rows)
                else:
                    typer.echo("Nothing is waiting for a decision.")
                sys.stdout.flush()
        except ApprovalsError as exc:
            raise _fail(exc) from exc
        except KeyboardInterrupt:
            return


def show(id: Id, url: Url = None, key: Key = None) -> None:
    """Show one approval: what is asked, with which arguments, and its outcome."""
    with _client(url, key) as client:
        try:
            body = client.get(f"/v1/approvals/{id}")
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    lines = [
        ("id", body["id"]),
        ("status", body["status"]),
        ("title", body["title"]),
        ("headline", body.get("headline") if body.get("headline") != body["title"] else None),
        ("tool", body.get("tool")),
        ("agent", body.get("agentId")),
        ("run", body.get("runId")),
        ("thread", body.get("threadId")),
        ("requested by", body.get("requestedBy")),
        ("created", body.get("createdAt")),
        ("expires", body.get("expiresAt")),
        ("assigned to", body.get("assignedTo")),
        ("assigned by", body.get("assignedBy")),
        ("for", body.get("delegatedFrom") and f"{body['delegatedFrom']} (away)"),
        ("decided by", body.get("resolvedBy")),
        ("decided at", body.get("resolvedAt")),
        ("comment", body.get("comment")),
        ("answer", body.get("answer")),
        ("digest", body.get("argumentsDigest")),
        ("executed at", (body.get("execution") or {}).get("at")),
    ]
    for label, value in lines:
        if value is not None:
            typer.echo(f"{label + ':':14}{value}")
    for label, value in (
        ("arguments", body.get("arguments")),
        ("edited", body.get("editedArguments")),
    ):
        if value is not None:
            typer.echo(f"{label}:")
            typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _decide(url: str | None, key: str | None, approval_id: str, decision: str, **body: Any) -> None:
    with _client(url, key) as client:
        try:
            result: Decision = client.decide(approval_id, decision, **body)
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    typer.echo(f"{result.approval_id} {result.status} by {result.resolved_by}")


Digest = Annotated[
    str | None,
    typer.Option(
        help="The digest `approvals show` printed: when the arguments changed since, "
        "nothing is decided (stale)."
    ),
]


def approve(
    id: Id,
    url: Url = None,
    key: Key = None,
    comment: Annotated[str | None, typer.Option(help="A note for the agent.")] = None,
    arguments: Annotated[
        str | None, typer.Option(help="Edited arguments as a JSON object, e.g. '{\"count\": 2}'.")
    ] = None,
    digest: Digest = None,
    grant: Annotated[
        str | None,
        typer.Option(
            metavar="SCOPE:SECONDS",
            help="Also allow the tool without asking: run:3600 (this run for an hour) or "
            "agent:900 (this agent for 15 minutes), within the policy's cap.",
        ),
    ] = None,
) -> None:
    """Approve an approval, optionally with edited arguments and a standing grant."""
    edited = None
    if arguments is not None:
        try:
            edited = json.loads(arguments)
        except ValueError as exc:
            typer.echo(f"error: --arguments is not JSON: {exc}", err=True)
            raise typer.Exit(2) from exc
        if not isinstance(edited, dict):
            typer.echo("error: --arguments must be a JSON object", err=True)
            raise typer.Exit(2)
    try:
        standing = grant_choice(grant or "")
    except ValueError as exc:
        typer.echo(f"error: --grant {exc}", err=True)
        raise typer.Exit(2) from exc
    _decide(
        url,
        key,
        id,
        "approve",
        comment=comment,
        arguments=edited,
        arguments_digest=digest,
        grant=standing,
    )


def reject(
    id: Id,
    reason: Annotated[str, typer.Option("--reason", help="Why; the agent receives it.")],
    url: Url = None,
    key: Key = None,
    digest: Digest = None,
) -> None:
    """Reject an approval with a reason."""
    _decide(url, key, id, "reject", comment=reason, arguments_digest=digest)


def answer(
    id: Id,
    text: Annotated[str | None, typer.Argument(help="The answer the agent receives.")] = None,
    url: Url = None,
    key: Key = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            metavar="NAME=VALUE",
            help="For a request that asks for a form (an MCP elicitation): one field (repeat).",
        ),
    ] = None,
) -> None:
    """Answer an approval with text instead of approving it, or fill in the form it asks for."""
    if field:
        if text is not None:
            typer.echo("error: give the answer TEXT or --field values, not both", err=True)
            raise typer.Exit(2)
        text = _form_answer(url, key, id, field)
    elif text is None:
        typer.echo("error: give the answer TEXT (or --field NAME=VALUE for a form)", err=True)
        raise typer.Exit(2)
    _decide(url, key, id, "answer", answer=text)


def _form_answer(url: str | None, key: str | None, approval_id: str, pairs: list[str]) -> str:
    """The answer to a request's form (``detail.requestedSchema``) from ``NAME=VALUE`` pairs:
    the JSON object of the fields in the schema's types."""
    with _client(url, key) as client:
        try:
            body = client.get(f"/v1/approvals/{approval_id}")
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    detail = (body.get("request") or {}).get("detail")
    schema = detail.get("requestedSchema") if isinstance(detail, dict) else None
    try:
        form = elicitation.fields(schema)
    except elicitation.Unsupported as exc:
        typer.echo(f"error: this request asks for no form ({exc}); answer it with TEXT", err=True)
        raise typer.Exit(2) from exc
    values: dict[str, str] = {}
    names = {f.name for f in form}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in names:
            fields = elicitation.describe(form)
            typer.echo(f"error: --field {pair!r}: the form's fields are\n{fields}", err=True)
            raise typer.Exit(2)
        values[name] = value
    content, errors = elicitation.from_strings(form, values)
    if errors:
        for name, why in errors.items():
            typer.echo(f"error: --field {name} {why}", err=True)
        typer.echo(f"the form's fields are\n{elicitation.describe(form)}", err=True)
        raise typer.Exit(2)
    return elicitation.answer_text(content)


grants_app = typer.Typer(
    help="Standing grants: list them and revoke one (over the HTTP API).", no_args_is_help=True
)


@grants_app.command("list")
def list_grants(
    url: Url = None,
    key: Key = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Ended grants (revoked, expired) too.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON list.")] = False,
) -> None:
    """List the standing grants in force, newest first."""
    with _client(url, key) as client:
        try:
            rows = client.grants(everything=everything)
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("No grants in force." if not everything else "No grants.")
        return
    for grant in rows:
        scope = f"run {grant['runId']}" if grant["scope"] == "run" else f"agent {grant['agentId']}"
        ended = grant["revokedAt"] and f"revoked {grant['revokedAt']}"
        typer.echo(
            f"{grant['id']}  {_oneline(grant['tool'], 30)}  {_oneline(scope, 40)}  "
            f"by {grant['grantedBy']}  until {grant['expiresAt']}  "
            f"used {grant['uses']}" + (f"  ({ended})" if ended else "")
        )


@grants_app.command("revoke")
def revoke_grant(
    id: Annotated[str, typer.Argument(help="The grant's id (grt_…).")],
    url: Url = None,
    key: Key = None,
) -> None:
    """Revoke a standing grant: the next matching request asks a human again."""
    with _client(url, key) as client:
        try:
            client.revoke_grant(id)
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    typer.echo(f"{id} revoked")


def assign(
    id: Id,
    to: Annotated[str, typer.Option("--to", help="The reviewer's username.")],
    url: Url = None,
    key: Key = None,
) -> None:
    """Hand a pending approval to a reviewer (to their delegate while they are away)."""
    with _client(url, key) as client:
        try:
            body = client.assign(id, to)
        except ApprovalsError as exc:
            raise _fail(exc) from exc
    away = body.get("delegatedFrom")
    typer.echo(
        f"{body['id']} assigned to {body['assignedTo']}"
        + (f" (for {away}, who is away)" if away else "")
    )


def register(app: typer.Typer) -> None:
    """Add the inbox commands to the ``approvals`` command line."""
    for command in (pending, show, approve, reject, answer, assign):
        app.command(rich_help_panel="Inbox (over the HTTP API)")(command)
    app.add_typer(grants_app, name="grants", rich_help_panel="Inbox (over the HTTP API)")
