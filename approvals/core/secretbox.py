"""Encryption at rest for upstream tokens, keyed by ``APPROVALS_SECRET_KEY``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from approvals.core.clock import now_iso

GENERATED = "token_key"


def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"approvals-token-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class ServiceSecret(SQLModel, table=True):
    """Service-wide secrets, such as the one that signs approval callbacks."""

    __tablename__ = "service_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
    created_at: str = Field(max_length=32)


secrets_table = ServiceSecret.__table__  # type: ignore[attr-defined]


def stored(conn: Connection, name: str, make: Callable[[], str]) -> str:
    """The service-wide secret ``name``, made with ``make`` and kept on first use."""
    query = select(secrets_table.c.value).where(secrets_table.c.name == name)
    value = conn.execute(query).scalar()
    if value is None:
        value = make()
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(secrets_table).values(name=name, value=value, created_at=now_iso())
                )
        except IntegrityError:  # another process created it first
            value = conn.execute(query).scalar_one()
    return str(value)


def service_key(conn: Connection, configured: str) -> str:
    """The configured secret key, or one generated once and kept in the database."""
    if configured:
        return configured
    return stored(
        conn,
        GENERATED,
        lambda: base64.urlsafe_b64encode(hashlib.sha256(Fernet.generate_key()).digest()).decode(),
    )


def encrypt(key: str, plaintext: str) -> str:
    """Encrypt a token for storage."""
    return _fernet(key).encrypt(plaintext.encode()).decode()


def decrypt(key: str, ciphertext: str) -> str:
    """Decrypt a stored token; ValueError when the key has changed."""
    try:
        return _fernet(key).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "the stored token cannot be decrypted: APPROVALS_SECRET_KEY changed; "
            "update the source's token"
        ) from exc
