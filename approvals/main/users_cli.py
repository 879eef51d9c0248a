"""``approvals users …``: reviewers, their contacts, passwords and disabling."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer

from approvals.auth.users import (
    UserError,
    create_user,
    disable_user,
    list_users,
    set_password,
    sign_out_everywhere,
    update_user,
)
from approvals.core.clock import now_iso

Transaction = Callable[[], AbstractContextManager[tuple[Any, Any]]]
Audited = Callable[[Callable[[Any, Any], Any]], Any]
EMAIL_HELP = "The reviewer's email address (for email notifications); '' clears it."
SLACK_HELP = "The reviewer's Slack user id, like U012AB3CD (for Slack decisions); '' clears it."
DISCORD_HELP = "The reviewer's Discord user id (digits; for Discord decisions); '' clears it."
TEAMS_HELP = (
    "The reviewer's Microsoft Entra (AAD) object id, a GUID (for Teams decisions); '' clears it."
)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def register(users: typer.Typer, transaction: Transaction, audited: Audited) -> None:
    """Add the reviewer commands to ``users``; changes are written with their audit events."""

    def run(action: Callable[[Any], None]) -> None:
        try:
            with transaction() as (_, conn):
                action(conn)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    def change(action: Callable[[Any], Any], kind: str, title: str, **detail: Any) -> None:
        """Make one change and record ``audit.<kind>`` with it, in one transaction."""

        def work(conn: Any, record: Any) -> None:
            action(conn)
            record(kind, title, **detail)

        audited(work)

    @users.command("create")
    def users_create(
        name: Annotated[str, typer.Argument(help="The reviewer's username (their resolvedBy).")],
        email: Annotated[str | None, typer.Option(help=EMAIL_HELP)] = None,
        slack_user: Annotated[str | None, typer.Option(help=SLACK_HELP)] = None,
        password_stdin: Annotated[
            bool, typer.Option(help="Read the password from standard input.")
        ] = False,
        admin: Annotated[
            bool, typer.Option(help="An admin: may read the audit page of the dashboard.")
        ] = False,
    ) -> None:
        """Create a dashboard reviewer; the password is stored as an argon2 hash."""
        password = _password(password_stdin)

        change(
            lambda conn: create_user(
                conn, name, password, email=email, slack_user=slack_user, admin=admin
            ),
            "user.created",
            f"Reviewer {name!r} created",
            user=name,
            admin=admin,
        )
        typer.echo(f"Created reviewer {name!r}; they can sign in at /login.")

    @users.command("update")
    def users_update(
        name: Annotated[str, typer.Argument(help="The reviewer's username.")],
        email: Annotated[str | None, typer.Option(help=EMAIL_HELP)] = None,
        slack_user: Annotated[str | None, typer.Option(help=SLACK_HELP)] = None,
        discord_user: Annotated[str | None, typer.Option(help=DISCORD_HELP)] = None,
        teams_user: Annotated[str | None, typer.Option(help=TEAMS_HELP)] = None,
        admin: Annotated[
            bool | None,
            typer.Option("--admin/--no-admin", help="Grant or withdraw the audit page."),
        ] = None,
        away_until: Annotated[
            str | None,
            typer.Option(
                metavar="TIME",
                help="Away until this time (2026-12-24T00:00:00Z): what would go to them goes "
                'to their --delegate meanwhile. "" says they are back.',
            ),
        ] = None,
        delegate: Annotated[
            str | None,
            typer.Option(
                metavar="NAME", help='Who decides for them while they are away ("" clears).'
            ),
        ] = None,
    ) -> None:
        """Change a reviewer's email address, Slack, Discord or Teams id, admin flag or absence."""

        change(
            lambda conn: update_user(
                conn,
                name,
                email=email,
                slack_user=slack_user,
                discord_user=discord_user,
                teams_user=teams_user,
                admin=admin,
                away_until=away_until,
                delegate=delegate,
            ),
            "user.updated",
            f"Reviewer {name!r} updated",
            user=name,
            admin=admin,
            email=None if email is None else "changed",
            slackUser=None if slack_user is None else "changed",
            discordUser=None if discord_user is None else "changed",
            teamsUser=None if teams_user is None else "changed",
            awayUntil=away_until,
            delegate=delegate,
        )
        typer.echo(f"Updated reviewer {name!r}.")

    @users.command("list")
    def users_list() -> None:
        """List reviewers: name, email, Slack user, state and creation date (then their
        Discord and Teams ids, when linked)."""
        rows: list[dict[str, Any]] = []
        run(lambda conn: rows.extend(list_users(conn)))
        if not rows:
            typer.echo("No reviewers yet: approvals users create NAME")
        for row in rows:
            state = "disabled" if row["disabled"] else "active"
            if row["is_admin"]:
                state += ", admin"
            if row["away_until"] and row["away_until"] > now_iso():
                state += f", away until {row['away_until']} (delegate {row['delegate']})"
            typer.echo(
                f"{row['username']}\t{row['email'] or '-'}\t{row['slack_user_id'] or '-'}\t"
                f"{state}\t{row['created_at']}"
                + "".join(
                    f"\t{label}:{row[column]}"
                    for label, column in (
                        ("discord", "discord_user_id"),
                        ("teams", "teams_user_id"),
                    )
                    if row[column]
                )
            )

    @users.command("disable")
    def users_disable(
        name: Annotated[str, typer.Argument(help="The reviewer's username.")],
    ) -> None:
        """Disable a reviewer: no sign-in, no decisions from the dashboard, Slack or email."""

        change(
            lambda conn: disable_user(conn, name),
            "user.disabled",
            f"Reviewer {name!r} disabled",
            user=name,
        )
        typer.echo(f"Disabled reviewer {name!r}; their open sessions have ended.")

    @users.command("signout")
    def users_signout(
        name: Annotated[str, typer.Argument(help="The reviewer's username.")],
    ) -> None:
        """Sign a reviewer out everywhere: every session they hold ends now."""

        change(
            lambda conn: sign_out_everywhere(conn, name),
            "user.signed_out",
            f"Reviewer {name!r} signed out everywhere",
            user=name,
        )
        typer.echo(f"Signed {name!r} out of every session.")

    @users.command("password")
    def users_password(
        name: Annotated[str, typer.Argument(help="The reviewer's username.")],
        password_stdin: Annotated[
            bool, typer.Option(help="Read the new password from standard input.")
        ] = False,
    ) -> None:
        """Reset a reviewer's password."""
        password = _password(password_stdin)

        change(
            lambda conn: set_password(conn, name, password),
            "user.password_changed",
            f"Password of {name!r} reset",
            user=name,
        )
        typer.echo(f"Changed the password of {name!r}; their other sessions have ended.")
