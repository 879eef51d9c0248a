"""Signed session cookies, CSRF tokens and login rate limiting."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from litestar import Request
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from approvals.core.errors import ApiError
from approvals.core.secretbox import service_key

COOKIE = "approvals_session"
MAX_AGE = 12 * 3600
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the signed-in user (if any) and the CSRF token."""

    user: str | None
    csrf: str
    generation: int = 0  # the reviewer's session generation when signed in


async def serializer(
    request: Request[Any, Any, Any], salt: str = "approvals-session"
) -> URLSafeTimedSerializer:
    """A signer for ``salt``, keyed by APPROVALS_SECRET_KEY (or the generated service key)."""
    services = request.app.state.services
    signers = services.signers
    cached = signers.get(salt)
    if cached is None:
        async with services.engine.begin() as conn:
            key = await conn.run_sync(lambda sync: service_key(sync, services.settings.secret_key))
        cached = signers[salt] = URLSafeTimedSerializer(key, salt=salt)
    return cached


async def read(request: Request[Any, Any, Any]) -> Session | None:
    """The request's valid session, or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = (await serializer(request)).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    user = data.get("u")
    generation = data.get("g", 0)
    return Session(
        user if isinstance(user, str) else None,
        data["c"],
        generation if isinstance(generation, int) else -1,
    )


async def encode(request: Request[Any, Any, Any], session: Session) -> str:
    """The cookie value for a session."""
    data = {"u": session.user, "c": session.csrf, "g": session.generation}
    return str((await serializer(request)).dumps(data))


def fresh(user: str | None = None, generation: int = 0) -> Session:
    """A new session with a new CSRF token (at sign-in: a new cookie, nothing carried over)."""
    return Session(user, secrets.token_urlsafe(24), generation)


def check_csrf(session: Session | None, presented: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is missing or wrong (403)."""
    if session is None or not presented or not hmac.compare_digest(session.csrf, presented):
        raise ApiError(
            403,
            "forbidden",
            "the CSRF token is missing or wrong: reload the page and try again",
        )


login_failures = Table(
    "login_failures",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", Float, nullable=False),
)


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per username and address per ``window`` seconds.

    Failures are rows in the database, so every instance sees the same count.
    """

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window

    async def blocked(self, conn: AsyncConnection, username: str, address: str) -> float:
        """Seconds until another try is allowed (0 when allowed now)."""
        now = time.time()
        count, first = (
            await conn.execute(
                select(func.count(), func.min(login_failures.c.at)).where(
                    login_failures.c.username == username.lower()[:100],
                    login_failures.c.address == address[:64],
                    login_failures.c.at > now - self.window,
                )
            )
        ).one()
        if count < self.attempts:
            return 0.0
        return float(max(self.window - (now - first), 1.0))

    async def failed(self, conn: AsyncConnection, username: str, address: str) -> None:
        """Count a failed try (and forget tries older than the window)."""
        now = time.time()
        await conn.execute(delete(login_failures).where(login_failures.c.at < now - self.window))
        await conn.execute(
            insert(login_failures).values(
                username=username.lower()[:100], address=address[:64], at=now
            )
        )

    async def succeeded(self, conn: AsyncConnection, username: str, address: str) -> None:
        """Forget the failures of a user who got in."""
        await conn.execute(
            delete(login_failures).where(
                login_failures.c.username == username.lower()[:100],
                login_failures.c.address == address[:64],
            )
        )
