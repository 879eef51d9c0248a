"""The API key table: names, scopes and hashes, never the keys themselves."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class ApiKey(SQLModel, table=True):
    """A named API key with its scopes; only a SHA-256 of the key is kept."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: str = Field(max_length=500)
    created_at: str = Field(max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)
    expires_at: str | None = Field(default=None, max_length=32)
    rate: str | None = Field(default=None, max_length=64)
