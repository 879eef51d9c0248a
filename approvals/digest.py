"""What an approval signs: the digest of a call's arguments, the same in the service and
the SDK (which imports nothing else of the service).

The digest is ``sha256:`` and the hex SHA-256 of the arguments' canonical JSON
(RFC 8785, through the ``rfc8785`` package): keys sorted, no spaces, numbers in one
form, so the same arguments always give the same digest whoever serialises them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

PREFIX = "sha256:"


class Unsignable(ValueError):
    """Arguments that have no canonical JSON (an integer beyond ±2**53, a NaN)."""


def arguments_digest(arguments: dict[str, Any] | None) -> str:
    """The digest of ``arguments`` (None, no arguments, has a digest too)."""
    try:
        canonical = rfc8785.dumps(arguments)
    except rfc8785.CanonicalizationError as exc:
        raise Unsignable(str(exc)) from exc
    return PREFIX + hashlib.sha256(canonical).hexdigest()


def unsignable(arguments: Any) -> str | None:
    """Why ``arguments`` cannot be signed, or None when they can."""
    try:
        arguments_digest(arguments)
    except Unsignable as exc:
        return (
            f"has no canonical JSON ({exc}); send integers beyond ±2**53 as strings "
            "so that what a reviewer approves can be signed"
        )
    return None


def approved_arguments(
    original: dict[str, Any] | None, edited: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The arguments a call runs with once approved: the original ones, with a reviewer's
    edits laid over them by name."""
    if isinstance(edited, dict):
        return {**(original or {}), **edited}
    return original
