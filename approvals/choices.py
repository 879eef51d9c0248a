"""A standing grant as a reviewer types or picks it: ``scope:seconds``.

The dashboard's grant select and ``approvals approve --grant`` read the same
text the same way, here; the service checks the result like any API body.
"""

from __future__ import annotations

from typing import Any

SCOPES = ("run", "agent")


def grant_choice(text: str) -> dict[str, Any] | None:
    """``run:3600`` or ``agent:900`` as a ``grant`` body, or None for an empty choice.

    Raises ValueError for anything else.
    """
    if not text:
        return None
    scope, _, seconds = text.partition(":")
    if scope not in SCOPES or not seconds.isdigit():
        raise ValueError("must look like run:3600 or agent:900")
    return {"scope": scope, "seconds": int(seconds)}
