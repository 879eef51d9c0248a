"""Reviewers who sign in to the dashboard; passwords are kept as argon2 hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from approvals.clock import now_iso

hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases cost the same time.
_DUMMY = hasher.hash("not a password anybody has")


class User(SQLModel, table=True):
    """A reviewer."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=200)
    created_at: str = Field(max_length=32)


users_table = User.__table__  # type: ignore[attr-defined]


class UserError(ValueError):
    """A user cannot be created as asked."""


def create_user(conn: Connection, username: str, password: str) -> None:
    """Store a reviewer with an argon2 hash of the password."""
    if not username or len(username) > 100 or not username.isprintable() or " " in username:
        raise UserError("the username must be 1 to 100 printable characters without spaces")
    if username.startswith(("system:", "source:")):
        raise UserError("usernames starting with system: or source: are reserved")
    if len(password) < 8:
        raise UserError("the password must be at least 8 characters")
    taken = conn.execute(select(users_table.c.id).where(users_table.c.username == username))
    if taken.first() is not None:
        raise UserError(f"a user named {username!r} exists")
    conn.execute(
        insert(users_table).values(
            username=username, password_hash=hasher.hash(password), created_at=now_iso()
        )
    )


async def check_password(engine: AsyncEngine, username: str, password: str) -> bool:
    """Tell whether the username exists and the password is its own."""
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(users_table.c.password_hash).where(users_table.c.username == username)
            )
        ).scalar()
    try:
        hasher.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None
