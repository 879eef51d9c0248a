"""Reviewers who sign in to the dashboard; passwords are kept as argon2 hashes."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from approvals.core.clock import iso, now_iso, parse_iso

hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """A hash verified against when the username is unknown, so both cases cost the same
    time (made on first use, not on import: every process, the CLI too, imports this)."""
    return hasher.hash("not a password anybody has")


EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,30}")
DISCORD_USER = re.compile(r"[0-9]{15,21}")  # a snowflake
TEAMS_USER = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# Not an argon2 hash, so no password matches it: reviewers created by an identity provider.
NO_PASSWORD = "!"


class User(SQLModel, table=True):
    """A reviewer."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=200)
    created_at: str = Field(max_length=32)
    email: str | None = Field(default=None, max_length=320)
    slack_user_id: str | None = Field(default=None, max_length=64)
    discord_user_id: str | None = Field(default=None, max_length=64)
    teams_user_id: str | None = Field(default=None, max_length=64)  # AAD object id
    disabled: bool = False
    session_generation: int = 0
    is_admin: bool = False
    oidc_subject: str | None = Field(default=None, max_length=300, unique=True)
    away_until: str | None = Field(default=None, max_length=32)  # delegating until then
    delegate: str | None = Field(default=None, max_length=100)  # who decides meanwhile


users_table = User.__table__  # type: ignore[attr-defined]


class UserError(ValueError):
    """A user cannot be created as asked."""


class UsernameTaken(UserError):
    """An identity provider's username belongs to a reviewer bound to nobody or somebody else."""


@dataclass(frozen=True)
class ProviderUser:
    """The reviewer an identity provider's subject signs in as."""

    username: str
    disabled: bool
    created: bool


def _check_username(username: str) -> None:
    if not username or len(username) > 100 or not username.isprintable() or " " in username:
        raise UserError("the username must be 1 to 100 printable characters without spaces")
    if username.startswith(("system:", "source:")):
        raise UserError("usernames starting with system: or source: are reserved")


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise UserError("the password must be at least 8 characters")


# Chat accounts a reviewer is linked by: option, column, format, example.
CHAT_IDS = {
    "slack_user": ("slack_user_id", SLACK_USER, "a Slack user id (like U012AB3CD)"),
    "discord_user": ("discord_user_id", DISCORD_USER, "a Discord user id (digits)"),
    "teams_user": (
        "teams_user_id",
        TEAMS_USER,
        "a Teams user's Entra (AAD) object id (like 6f1c2d3e-0000-4000-8000-000000000000)",
    ),
}


def _contacts(
    email: str | None, slack_user: str | None, **chats: str | None
) -> dict[str, str | None]:
    """Validated contact columns; an empty string clears one."""
    values: dict[str, str | None] = {}
    if email is not None:
        email = email.strip()
        if email and (len(email) > 320 or not EMAIL.fullmatch(email)):
            raise UserError(f"{email!r} is not an email address")
        values["email"] = email or None
    for option, given in {"slack_user": slack_user, **chats}.items():
        if given is None:
            continue
        column, form, what = CHAT_IDS[option]
        given = given.strip()
        if given and not form.fullmatch(given):
            raise UserError(f"{given!r} is not {what}")
        values[column] = (given.lower() if option == "teams_user" else given) or None
    return values


def create_user(
    conn: Connection,
    username: str,
    password: str,
    *,
    email: str | None = None,
    slack_user: str | None = None,
    admin: bool = False,
) -> None:
    """Store a reviewer with an argon2 hash of the password and their contacts."""
    _check_username(username)
    _check_password(password)
    contacts = _contacts(email, slack_user)
    taken = conn.execute(select(users_table.c.id).where(users_table.c.username == username))
    if taken.first() is not None:
        raise UserError(f"a user named {username!r} exists")
    conn.execute(
        insert(users_table).values(
            username=username,
            password_hash=hasher.hash(password),
            created_at=now_iso(),
            disabled=False,
            is_admin=admin,
            session_generation=0,
            **contacts,
        )
    )


def provider_user(conn: Connection, subject: str, username: str, email: str | None) -> ProviderUser:
    """The reviewer bound to ``subject``; created (without a password) on first sign-in.

    A local reviewer who already has ``username`` is never taken over: that raises
    :class:`UsernameTaken`, and an administrator decides who they are.
    """
    by_subject = select(users_table.c.username, users_table.c.disabled).where(
        users_table.c.oidc_subject == subject
    )
    row = conn.execute(by_subject).first()
    if row is not None:
        return ProviderUser(row.username, bool(row.disabled), created=False)
    if conn.execute(select(users_table.c.id).where(users_table.c.username == username)).first():
        raise UsernameTaken(f"a reviewer named {username!r} exists and is not bound to {subject!r}")
    _check_username(username)
    try:
        contacts = _contacts(email, None)
    except UserError:
        contacts = {}  # an address we cannot use is left out rather than refusing the sign-in
    try:
        with conn.begin_nested():
            conn.execute(
                insert(users_table).values(
                    username=username,
                    password_hash=NO_PASSWORD,
                    created_at=now_iso(),
                    disabled=False,
                    oidc_subject=subject,
                    **contacts,
                )
            )
    except IntegrityError as exc:  # the same first sign-in in two tabs, or the name just taken
        row = conn.execute(by_subject).first()
        if row is None:
            raise UsernameTaken(f"a reviewer named {username!r} was created meanwhile") from exc
        return ProviderUser(row.username, bool(row.disabled), created=False)
    return ProviderUser(username, False, created=True)


def _change(conn: Connection, username: str, **values: Any) -> None:
    result = conn.execute(
        update(users_table).where(users_table.c.username == username).values(**values)
    )
    if result.rowcount == 0:
        raise UserError(f"no user named {username!r}")


def update_user(
    conn: Connection,
    username: str,
    *,
    email: str | None = None,
    slack_user: str | None = None,
    discord_user: str | None = None,
    teams_user: str | None = None,
    admin: bool | None = None,
    away_until: str | None = None,
    delegate: str | None = None,
) -> None:
    """Change a reviewer's email address, Slack, Discord or Teams id ("" clears one), admin
    flag, or absence: away until a time ("" for back) with a delegate who decides meanwhile."""
    values: dict[str, Any] = dict(
        _contacts(email, slack_user, discord_user=discord_user, teams_user=teams_user)
    )
    if admin is not None:
        values["is_admin"] = admin
    values.update(_absence(conn, username, away_until, delegate))
    if not values:
        raise UserError(
            "give --email, --slack-user, --discord-user, --teams-user, --admin/--no-admin, "
            "--away-until and/or --delegate"
        )
    _change(conn, username, **values)


def _absence(
    conn: Connection, username: str, away_until: str | None, delegate: str | None
) -> dict[str, Any]:
    """Checked ``away_until`` and ``delegate`` columns ("" clears either): a future time,
    and another reviewer who can act; an absence without a delegate is refused."""
    if away_until is None and delegate is None:
        return {}
    current = conn.execute(
        select(users_table.c.away_until, users_table.c.delegate).where(
            users_table.c.username == username
        )
    ).first()
    if current is None:
        raise UserError(f"no user named {username!r}")
    values: dict[str, Any] = {}
    if away_until:
        try:
            moment = parse_iso(away_until)
        except ValueError as exc:
            raise UserError(
                f"{away_until!r} is not a time like 2026-12-24T00:00:00Z: {exc}"
            ) from exc
        if moment <= datetime.now(UTC):
            raise UserError(f"{away_until!r} has passed: away until a time still to come")
        values["away_until"] = iso(moment)
    elif away_until == "":
        values["away_until"] = None
    if delegate:
        if delegate == username:
            raise UserError("a reviewer cannot delegate to themselves")
        found = conn.execute(
            select(users_table.c.disabled).where(users_table.c.username == delegate)
        ).first()
        if found is None or found.disabled:
            raise UserError(f"no active reviewer named {delegate!r} to delegate to")
        values["delegate"] = delegate
    elif delegate == "":
        values["delegate"] = None
    away = values.get("away_until", current.away_until)
    if away is not None and values.get("delegate", current.delegate) is None:
        raise UserError("an away reviewer needs a delegate: give --delegate NAME")
    return values


async def stand_in(conn: Any, username: str) -> tuple[str, str | None]:
    """Who acts for ``username`` now: their delegate (and theirs, and so on) while each is
    away, with the first away reviewer named; ``(username, None)`` when they are here."""
    now = now_iso()
    seen = [username]
    while True:
        row = (
            await conn.execute(
                select(users_table.c.away_until, users_table.c.delegate).where(
                    users_table.c.username == seen[-1]
                )
            )
        ).first()
        if row is None or not row.delegate or not row.away_until or row.away_until <= now:
            break
        if row.delegate in seen:
            break  # two reviewers away, each delegating to the other: stop at the last
        disabled = (
            await conn.execute(
                select(users_table.c.disabled).where(users_table.c.username == row.delegate)
            )
        ).scalar()
        if disabled is not False:
            break  # the delegate was disabled (or removed) since: nobody to hand it to
        seen.append(row.delegate)
    return (seen[-1], username if len(seen) > 1 else None)


def _ended(conn: Connection, username: str, **values: Any) -> None:
    """Change a reviewer and end every session they hold (a new session generation)."""
    _change(
        conn,
        username,
        session_generation=users_table.c.session_generation + 1,
        **values,
    )


def set_password(conn: Connection, username: str, password: str) -> None:
    """Replace a reviewer's password; their sessions end."""
    _check_password(password)
    _ended(conn, username, password_hash=hasher.hash(password))


def disable_user(conn: Connection, username: str) -> None:
    """Stop a reviewer from signing in and deciding anywhere; their sessions end."""
    _ended(conn, username, disabled=True)


def sign_out_everywhere(conn: Connection, username: str) -> None:
    """End every session the reviewer holds, on every instance."""
    _ended(conn, username)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every reviewer with contacts and state (never the hash)."""
    rows = conn.execute(
        select(
            users_table.c.username,
            users_table.c.email,
            users_table.c.slack_user_id,
            users_table.c.discord_user_id,
            users_table.c.teams_user_id,
            users_table.c.disabled,
            users_table.c.is_admin,
            users_table.c.created_at,
            users_table.c.away_until,
            users_table.c.delegate,
        ).order_by(users_table.c.username)
    )
    return [dict(row) for row in rows.mappings()]


def live(found: dict[str, Any] | None, generation: int | None = None) -> bool:
    """The one rule for who may act: the reviewer exists (``found``, from ``reviewer``), is
    not disabled and, given a session's ``generation``, that session is still current."""
    if found is None or found["disabled"]:
        return False
    return generation is None or found["session_generation"] == generation


async def active(engine: AsyncEngine, username: str, generation: int | None = None) -> bool:
    """Tell whether a reviewer may act now (``live`` on their stored state)."""
    return live(await reviewer(engine, username), generation)


async def reviewer(engine: AsyncEngine, username: str) -> dict[str, Any] | None:
    """A reviewer's state: disabled, admin and session generation (None when unknown)."""
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(
                        users_table.c.disabled,
                        users_table.c.is_admin,
                        users_table.c.session_generation,
                    ).where(users_table.c.username == username)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def check_password(engine: AsyncEngine, username: str, password: str) -> bool:
    """Tell whether the username exists, is not disabled, and the password is its own."""
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(users_table.c.password_hash).where(
                    users_table.c.username == username, users_table.c.disabled.is_(False)
                )
            )
        ).scalar()
    try:
        hasher.verify(stored or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None
