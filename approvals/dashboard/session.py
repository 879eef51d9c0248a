"""Signed session cookies, CSRF tokens and login rate limiting."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from litestar import Request

from approvals.errors import ApiError
from approvals.secretbox import service_key

COOKIE = "approvals_session"
MAX_AGE = 12 * 3600
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the signed-in user (if any) and the CSRF token."""

    user: str | None
    csrf: str


async def serializer(request: Request[Any, Any, Any]) -> URLSafeTimedSerializer:
    """The cookie signer, keyed by APPROVALS_SECRET_KEY (or the generated service key)."""
    services = request.app.state.services
    cached = getattr(services, "session_signer", None)
    if cached is None:
        async with services.engine.begin() as conn:
            key = await conn.run_sync(lambda sync: service_key(sync, services.settings.secret_key))
        cached = URLSafeTimedSerializer(key, salt="approvals-session")
        services.session_signer = cached
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
    return Session(user if isinstance(user, str) else None, data["c"])


async def encode(request: Request[Any, Any, Any], session: Session) -> str:
    """The cookie value for a session."""
    return str((await serializer(request)).dumps({"u": session.user, "c": session.csrf}))


def fresh(user: str | None = None) -> Session:
    """A new session with a new CSRF token."""
    return Session(user, secrets.token_urlsafe(24))


def check_csrf(session: Session | None, presented: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is missing or wrong (403)."""
    if session is None or not presented or not hmac.compare_digest(session.csrf, presented):
        raise ApiError(
            403,
            "forbidden",
            "the CSRF token is missing or wrong: reload the page and try again",
        )


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per username and address per ``window`` seconds."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self.failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self.failures[key]
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def blocked(self, username: str, address: str, now: float | None = None) -> float:
        """Seconds until another try is allowed (0 when allowed now)."""
        now = time.monotonic() if now is None else now
        times = self._recent((username.lower(), address), now)
        if len(times) < self.attempts:
            return 0.0
        return max(self.window - (now - times[0]), 1.0)

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        """Count a failed try."""
        now = time.monotonic() if now is None else now
        self._recent((username.lower(), address), now).append(now)

    def succeeded(self, username: str, address: str) -> None:
        """Forget the failures of a user who got in."""
        self.failures.pop((username.lower(), address), None)
