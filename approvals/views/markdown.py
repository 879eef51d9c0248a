"""Agent-written Markdown as safe HTML: raw HTML off, unsafe links refused, links rel=noopener."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})
_md.disable("image")  # no remote images fetched on a reviewer's behalf


def _link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return str(self.renderToken(tokens, idx, options, env))


_md.add_render_rule("link_open", _link_open)


def markdown(text: Any) -> Markup:
    """Render Markdown written by an agent; anything else renders as nothing."""
    if not isinstance(text, str) or not text.strip():
        return Markup("")
    # markdown-it escapes the text itself and raw HTML is off, so the output is safe markup.
    return Markup(_md.render(text[:20_000]))
