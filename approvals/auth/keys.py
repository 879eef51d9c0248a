"""Create, list, revoke and verify API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.auth.models import ApiKey
from approvals.clock import now_iso

SCOPES = ("events:read", "events:write", "approvals:read", "approvals:resolve", "admin")
KEY_PREFIX = "apk_"
keys_table = ApiKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's or a reviewer's name, and what they may do."""

    name: str
    scopes: frozenset[str]
    kind: str = "key"

    def allows(self, scope: str) -> bool:
        """Tell whether this principal holds ``scope`` (``admin`` holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes


class KeyError_(ValueError):
    """A key command was given something it cannot do."""


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, enough for 256-bit random keys."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: Connection, name: str, scopes: list[str]) -> str:
    """Store a new key and return it; it is never shown again."""
    if not name or len(name) > 200 or not name.isprintable():
        raise KeyError_("the key name must be 1 to 200 printable characters")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise KeyError_(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not scopes:
        raise KeyError_(f"give at least one --scope ({', '.join(SCOPES)})")
    taken = conn.execute(select(keys_table.c.id).where(keys_table.c.name == name)).first()
    if taken is not None:
        raise KeyError_(f"a key named {name!r} exists; revoke it or choose another name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(keys_table).values(
            name=name,
            prefix=key[:10],
            key_hash=hash_key(key),
            scopes=" ".join(sorted(set(scopes))),
            created_at=now_iso(),
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
        }
        for row in rows
    ]


def revoke_key(conn: Connection, name: str) -> None:
    """Revoke a key by name; it stops working at once."""
    result = conn.execute(
        update(keys_table)
        .where(keys_table.c.name == name, keys_table.c.revoked_at.is_(None))
        .values(revoked_at=now_iso(), name=f"{name} (revoked {secrets.token_hex(3)})")
    )
    if result.rowcount == 0:
        raise KeyError_(f"no active key named {name!r}")


async def verify_key(engine: AsyncEngine, key: str) -> Principal | None:
    """The principal behind a presented key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(keys_table.c.name, keys_table.c.scopes).where(
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
    return Principal(row["name"], frozenset(row["scopes"].split()))
