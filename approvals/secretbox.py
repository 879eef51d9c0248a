"""Encryption at rest for upstream tokens, keyed by ``APPROVALS_SECRET_KEY``."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from approvals.clock import now_iso
from approvals.webhooks.secrets import secrets_table

GENERATED = "token_key"


def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"approvals-token-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def service_key(conn: Connection, configured: str) -> str:
    """The configured secret key, or one generated once and kept in the database."""
    if configured:
        return configured
    value = conn.execute(
        select(secrets_table.c.value).where(secrets_table.c.name == GENERATED)
    ).scalar()
    if value is None:
        value = base64.urlsafe_b64encode(hashlib.sha256(Fernet.generate_key()).digest()).decode()
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(secrets_table).values(name=GENERATED, value=value, created_at=now_iso())
                )
        except IntegrityError:
            value = conn.execute(
                select(secrets_table.c.value).where(secrets_table.c.name == GENERATED)
            ).scalar_one()
    return str(value)


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
