"""The sources table: upstream streams the service subscribes to."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Source(SQLModel, table=True):
    """One platform stream: its dialect, URL, encrypted token and resume webhook."""

    __tablename__ = "sources"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    dialect: str = Field(max_length=32)
    url: str = Field(max_length=2000)
    token_encrypted: str
    resume_url: str | None = Field(default=None, max_length=2000)
    resume_secret: str = Field(max_length=100)
    history: bool = False
    status: str = Field(default="connecting", max_length=16)
    cursor: str | None = Field(default=None, max_length=500)
    last_error: str | None = None
    events_received: int = 0
    events_skipped: int = 0
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)
