"""Redaction: the argument values a policy names (``password``, ``headers.authorization``,
``*.token``) replaced by ``"[redacted]"`` wherever a person or a channel sees a request.

The stored events and approvals keep every value, the requesting agent reads its own
arguments back unchanged, and the digest a reviewer signs is that of the real
arguments, so redaction never weakens what was signed. This module is the one place
that knows what a path is and what is hidden; the exits (the API, the dashboard, the
stream, the feeds, Slack, email, webhooks) call ``event`` and ``approval`` from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from approvals.core.errors import invalid

MARK = "[redacted]"
MAX_PATHS = 50
MAX_DEPTH = 10
SEGMENT = re.compile(r"^(\*|[A-Za-z0-9_\-$@]{1,100})$")
# Where an event carries a call's arguments (a request; a resolution's approved and
# original ones).
ARGUMENT_FIELDS = ("arguments", "originalArguments")


def check_paths(paths: Sequence[str], where: str) -> list[str]:
    """The policy's ``redact`` paths, checked: dot-separated keys, ``*`` for any key at
    one level; 422 naming the first bad one."""
    if len(paths) > MAX_PATHS:
        raise invalid(where, f"at most {MAX_PATHS} paths")
    for index, path in enumerate(paths):
        segments = path.split(".")
        if len(segments) > MAX_DEPTH or not all(SEGMENT.match(s) for s in segments):
            raise invalid(
                f"{where}[{index}]",
                f"{path!r} is not a path: keys of letters, digits, _ - $ @ joined by dots, "
                f"or * for any key, at most {MAX_DEPTH} deep (e.g. headers.authorization)",
            )
    return list(dict.fromkeys(paths))


def redact(value: Any, paths: Sequence[str] | None) -> Any:
    """``value`` with the values at ``paths`` replaced by ``MARK`` (a copy where it
    changes; ``value`` itself when nothing matches)."""
    if not paths or not isinstance(value, dict):
        return value
    out = value
    for path in paths:
        out = _hide(out, path.split("."))
    return out


def _hide(value: Any, segments: list[str]) -> Any:
    if not isinstance(value, dict) or not segments:
        return value
    head, rest = segments[0], segments[1:]
    keys = list(value) if head == "*" else [head] if head in value else []
    if not keys:
        return value
    out = dict(value)
    for key in keys:
        out[key] = MARK if not rest else _hide(value[key], rest)
    return out


def restore(edited: dict[str, Any] | None, real: dict[str, Any] | None, paths: Sequence[str]):
    """A reviewer's edits with every ``MARK`` at a redacted path put back to the real
    value: a reviewer who never saw a secret cannot change it by sending the mark back."""
    if edited is None or not paths or not isinstance(real, dict):
        return edited
    shown = redact(real, paths)
    return {key: _unmark(value, shown.get(key), real.get(key)) for key, value in edited.items()}


def _unmark(edited: Any, shown: Any, real: Any) -> Any:
    if edited == MARK and shown == MARK:
        return real
    if isinstance(edited, dict) and isinstance(shown, dict) and isinstance(real, dict):
        return {k: _unmark(v, shown.get(k), real.get(k)) for k, v in edited.items()}
    return edited


def event(json: dict[str, Any], paths: Sequence[str] | None) -> dict[str, Any]:
    """An event's JSON as people see it: the arguments in its ``detail`` redacted."""
    detail = json.get("detail")
    if not paths or not isinstance(detail, dict):
        return json
    hidden = {k: redact(detail[k], paths) for k in ARGUMENT_FIELDS if k in detail}
    if all(hidden[k] is detail[k] for k in hidden):
        return json
    return {**json, "detail": {**detail, **hidden}}


def approval(json: dict[str, Any]) -> dict[str, Any]:
    """An approval's JSON as reviewers and channels see it: its arguments, edits and
    events redacted by the paths of its policy (``redact``)."""
    paths = json.get("redact")
    if not paths:
        return json
    out = {
        **json,
        "arguments": redact(json.get("arguments"), paths),
        "editedArguments": redact(json.get("editedArguments"), paths),
    }
    for key in ("request", "resolution"):
        if isinstance(json.get(key), dict):
            out[key] = event(json[key], paths)
    return out
