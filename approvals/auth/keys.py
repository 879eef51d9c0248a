"""Create, list, revoke and verify API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.auth.models import ApiKey
from approvals.auth.rates import Rate, RateError, parse_rate
from approvals.core.clock import now_iso
from approvals.core.errors import ApiError
from approvals.events.writer import prepared

SCOPES = ("events:read", "events:write", "approvals:read", "approvals:resolve", "admin")
KEY_PREFIX = "apk_"
keys_table = ApiKey.__table__  # type: ignore[attr-defined]
NAME_MAX = 200  # the name column's length


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's or a reviewer's name, and what they may do."""

    name: str
    scopes: frozenset[str]
    kind: str = "key"
    rate: Rate | None = None  # this key's own limit; None: the service's default
    # Set when this principal came from KeyCache: the key's hash, which the write that
    # acts for it must confirm (still stored, unrevoked, unexpired) in its own transaction.
    confirm: str | None = None
    expires_at: str | None = None

    def allows(self, scope: str) -> bool:
        """Tell whether this principal holds ``scope`` (``admin`` holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes


class KeyError_(ValueError):
    """A key command was given something it cannot do."""


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, enough for 256-bit random keys."""
    return hashlib.sha256(key.encode()).hexdigest()


DURATION = re.compile(r"(\d{1,6})([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(raw: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta (at least one second)."""
    match = DURATION.fullmatch(raw.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise KeyError_(f"{raw!r} is not a duration; write a number and a unit: 90d, 12h, 30m")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def create_key(
    conn: Connection,
    name: str,
    scopes: list[str],
    expires: timedelta | None = None,
    rate: str | None = None,
) -> str:
    """Store a new key and return it; it is never shown again.

    ``expires`` ends the key that long from now; ``rate`` (``50/s burst 200``,
    ``off``) overrides the service's ``APPROVALS_RATE_LIMIT`` for this key.
    """
    if rate is not None:
        try:
            parse_rate(rate)
        except RateError as exc:
            raise KeyError_(f"--rate: {exc}") from exc
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise KeyError_(f"the key name must be 1 to {NAME_MAX} printable characters")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise KeyError_(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not scopes:
        raise KeyError_(f"give at least one --scope ({', '.join(SCOPES)})")
    taken = conn.execute(select(keys_table.c.id).where(keys_table.c.name == name)).first()
    if taken is not None:
        raise KeyError_(
            f"a key named {name!r} exists and is shown only once, so nothing was printed; "
            f"for a new key under this name run 'approvals keys rotate {name}' (the new key "
            f"is its last line), or 'approvals keys revoke {name}' first, or choose another name"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(keys_table).values(
            name=name,
            prefix=key[:10],
            key_hash=hash_key(key),
            scopes=" ".join(sorted(set(scopes))),
            created_at=now_iso(),
            expires_at=_iso(datetime.now(UTC) + expires) if expires is not None else None,
            rate=rate.strip() if rate is not None else None,
        )
    )
    return key


def list_keys(conn: Connection) -> list[dict[str, str | None]]:
    """Every key's name, prefix, scopes and dates (never the key)."""
    rows = conn.execute(select(keys_table).order_by(keys_table.c.id)).mappings().all()
    return [
        {
            "name": row["name"],
            "prefix": row["prefix"],
            "scopes": row["scopes"],
            "createdAt": row["created_at"],
            "revokedAt": row["revoked_at"],
            "expiresAt": row["expires_at"],
            "rate": row["rate"],
        }
        for row in rows
    ]


def key_state(row: dict[str, str | None], now: datetime | None = None) -> str:
    """``active``, ``revoked …``, ``expired …`` or ``expires …`` for ``keys list``."""
    if row["revokedAt"]:
        return f"revoked {row['revokedAt']}"
    if row["expiresAt"]:
        ended = _parse_iso(row["expiresAt"]) <= (now or datetime.now(UTC))
        return f"{'expired' if ended else 'expires'} {row['expiresAt']}"
    return "active"


def rotate_key(conn: Connection, name: str, grace: timedelta) -> str:
    """Issue a new key named ``name`` with the old one's scopes, rate and lifetime.

    The old key keeps working for ``grace`` (or until its own expiry, if
    sooner) under the name ``NAME (rotated …)``, so agents can be moved over.
    """
    old = (
        conn.execute(
            select(keys_table).where(keys_table.c.name == name, keys_table.c.revoked_at.is_(None))
        )
        .mappings()
        .first()
    )
    if old is None:
        raise KeyError_(f"no active key named {name!r}")
    now = datetime.now(UTC)
    ends = now + grace
    if old["expires_at"] and _parse_iso(old["expires_at"]) < ends:
        ends = _parse_iso(old["expires_at"])
    lifetime = None
    if old["expires_at"]:
        lifetime = _parse_iso(old["expires_at"]) - _parse_iso(old["created_at"])
    conn.execute(
        update(keys_table)
        .where(keys_table.c.id == old["id"])
        .values(name=_retired(name, "rotated"), expires_at=_iso(ends))
    )
    return create_key(conn, name, old["scopes"].split(), lifetime, old["rate"])


def revoke_key(conn: Connection, name: str) -> None:
    """Revoke a key by name; it stops working at once."""
    result = conn.execute(
        update(keys_table)
        .where(keys_table.c.name == name, keys_table.c.revoked_at.is_(None))
        .values(revoked_at=now_iso(), name=_retired(name, "revoked"))
    )
    if result.rowcount == 0:
        raise KeyError_(f"no active key named {name!r}")


def _retired(name: str, how: str) -> str:
    """``NAME (revoked 1a2b3c)``, cut to fit the name column (PostgreSQL refuses more)."""
    suffix = f" ({how} {secrets.token_hex(3)})"
    return name[: NAME_MAX - len(suffix)] + suffix


class KeyRevoked(Exception):
    """The presented key is unknown or revoked."""


class KeyExpired(Exception):
    """The presented key was valid until ``at``."""

    def __init__(self, at: str) -> None:
        super().__init__(at)
        self.at = at


async def verify_key(engine: AsyncEngine, key: str) -> Principal | None:
    """The principal behind a presented key, or None; raises KeyExpired past its end."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(
                        keys_table.c.name,
                        keys_table.c.scopes,
                        keys_table.c.expires_at,
                        keys_table.c.rate,
                    ).where(
                        keys_table.c.key_hash == hash_key(key),
                        keys_table.c.revoked_at.is_(None),
                    )
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    if row["expires_at"] and _parse_iso(row["expires_at"]) <= datetime.now(UTC):
        raise KeyExpired(row["expires_at"])
    rate = parse_rate(row["rate"]) if row["rate"] else None
    return Principal(
        row["name"], frozenset(row["scopes"].split()), rate=rate, expires_at=row["expires_at"]
    )


# Run by every write transaction that admitted a cached key: built once. A batch
# usually holds one or two keys: each is one prepared lookup (an expanding IN is
# rendered anew on every execution); a batch of many keys reads them in one IN.
_LIVE_KEY = prepared(
    select(keys_table.c.key_hash, keys_table.c.expires_at).where(
        keys_table.c.key_hash == bindparam("digest"), keys_table.c.revoked_at.is_(None)
    )
)
_LIVE_KEYS = select(keys_table.c.key_hash, keys_table.c.expires_at).where(
    keys_table.c.key_hash.in_(bindparam("digests", expanding=True)),
    keys_table.c.revoked_at.is_(None),
)
ONE_BY_ONE = 4  # at most this many keys are looked up one at a time


class KeyCache:
    """Keys verified lately, so a write can skip its own lookup and confirm in its transaction.

    Only the log's append path uses it: the append transaction re-reads the
    cached keys of its whole batch in one query (under the log head lock, which
    revoking and rotating also take), so a key revoked or expired before the
    write commits is refused with nothing stored. Reads never use it.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._by_hash: dict[str, Principal] = {}

    def get(self, key: str) -> Principal | None:
        """The cached principal of a presented key, marked for confirmation."""
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        if found is None:
            return None
        if found.expires_at and _parse_iso(found.expires_at) <= datetime.now(UTC):
            self._by_hash.pop(digest, None)
            return None  # the full lookup explains the expiry
        return found

    def put(self, key: str, principal: Principal) -> None:
        """Remember a principal just verified from the database."""
        if len(self._by_hash) >= self.size:
            self._by_hash.clear()
        digest = hash_key(key)
        self._by_hash[digest] = replace(principal, confirm=digest)

    async def confirm(self, conn: Any, digests: set[str]) -> dict[str, ApiError]:
        """Refusals for the hashes no longer valid (revoked, deleted, expired), in ``conn``."""
        rows: list[Any] = []
        if len(digests) <= ONE_BY_ONE:
            for digest in digests:
                rows.extend((await conn.execute(_LIVE_KEY, {"digest": digest})).all())
        else:
            rows = list((await conn.execute(_LIVE_KEYS, {"digests": sorted(digests)})).all())
        now = datetime.now(UTC)
        valid = {r[0] for r in rows if not r[1] or _parse_iso(r[1]) > now}
        expired = {r[0]: r[1] for r in rows if r[0] not in valid}
        refused: dict[str, ApiError] = {}
        for digest in digests - valid:
            self._by_hash.pop(digest, None)
            refused[digest] = refusal(
                KeyExpired(expired[digest]) if digest in expired else KeyRevoked()
            )
        return refused


def refusal(exc: KeyExpired | KeyRevoked) -> ApiError:
    """The 401 answer for a key that is not (or no longer) good."""
    if isinstance(exc, KeyExpired):
        return ApiError(
            401,
            "unauthorized",
            f"the API key expired at {exc.at}; ask an admin for a new one "
            "(approvals keys create, or approvals keys rotate before it ends)",
        )
    return ApiError(401, "unauthorized", "the API key is unknown or revoked")
