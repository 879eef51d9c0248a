"""Display templates: a policy's short headline for its requests
(``Refund {{ arguments.amount }} to {{ arguments.customer }}``), shown in every channel.

Templates are written by admins but render agent-written values, so they run in Jinja's
``SandboxedEnvironment`` (no attribute tricks, no imports), over the arguments as people
see them (redacted), with a bounded output; a template that fails to render falls back
to the request's title. The channels escape the headline for where it lands (HTML,
Slack mrkdwn), as they do the title.
"""

from __future__ import annotations

import logging
from typing import Any

from jinja2 import TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from approvals.core.errors import invalid

log = logging.getLogger("approvals.queue")

NAMES = frozenset({"arguments", "tool", "agent", "run", "title"})
MAX_HEADLINE = 300

MAX_OPERAND = 10_000


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` refused on large operands (a template over an
    agent's long string must not build a huge one)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        for operand in (left, right):
            size = len(operand) if isinstance(operand, str | list) else abs(operand)
            if size > MAX_OPERAND:
                raise OverflowError(f"{operator} on an operand over {MAX_OPERAND}")
        return super().call_binop(context, operator, left, right)


_sandbox = _Sandbox(autoescape=False, trim_blocks=True)
_compiled: dict[str, Any] = {}  # source -> template; policies are few


def check_template(source: str, where: str) -> str:
    """The template, checked: it parses and names only ``arguments``, ``tool``,
    ``agent``, ``run`` and ``title``; 422 naming the problem otherwise."""
    try:
        parsed = _sandbox.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise invalid(where, f"is not a valid template{at}: {exc}") from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - NAMES)
    if unknown:
        raise invalid(
            where,
            f"uses {unknown[0]!r}; a display template may use {', '.join(sorted(NAMES))}",
        )
    return source


def headline(source: str | None, values: dict[str, Any], fallback: str | None) -> str | None:
    """The rendered headline (one line, at most ``MAX_HEADLINE`` characters), or
    ``fallback`` when there is no template or it cannot render these values."""
    if not source:
        return fallback
    try:
        template = _compiled.get(source)
        if template is None:
            if len(_compiled) > 1000:
                _compiled.clear()
            template = _compiled[source] = _sandbox.from_string(source)
        text = " ".join(template.render(**values).split())
    except Exception as exc:  # a template error, a sandbox refusal: the title instead
        log.info("display template failed (%s); showing the title", type(exc).__name__)
        return fallback
    if not text:
        return fallback
    return text if len(text) <= MAX_HEADLINE else text[: MAX_HEADLINE - 1] + "…"
