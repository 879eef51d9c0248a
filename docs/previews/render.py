"""Draw what the Discord and Teams channels send, for the setup pages' screenshots.

Neither client can be reached from where the docs are built, so this draws the very
JSON the channels post (``discord.render``, ``teams.card``, for a sample request with
agent text that tries mentions, links and markup) as a plain HTML preview, and takes a
screenshot of each with headless Chromium. It is a sketch of the clients' layout, not
their look. Run from the repository root::

    .venv/bin/python docs/previews/render.py [/usr/bin/chromium]
"""

from __future__ import annotations

import html
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from approvals.core.config import Settings
from approvals.delivery.channels import discord, teams

HERE = Path(__file__).resolve().parent
IN_AN_HOUR = (datetime.now(UTC) + timedelta(minutes=47)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
SAMPLE: dict[str, Any] = {
    "id": "apr_7Hq2xWm4Kp9sLd3e",
    "headline": "Post 5 ads to Meta for @everyone [click](https://evil.example) **now**",
    "title": "Post ads",
    "agentId": "ads-agent",
    "tool": "meta.post_ads",
    "runId": "run_2026_12_08",
    "requestedBy": "ads-agent",
    "arguments": {"account": "acme", "ads": 5, "budget_usd": 250},
    "argumentsDigest": "sha256:" + "0" * 64,
    "status": "pending",
    "expiresAt": IN_AN_HOUR,
    "minApprovals": 1,
    "resolvedBy": None,
    "resolvedAt": None,
    "comment": None,
}
STYLE = """
body { margin: 0; padding: 24px; font: 15px/1.4 system-ui, sans-serif; width: 560px; }
.discord { background: #313338; color: #dbdee1; }
.embed { border-left: 4px solid #5865f2; background: #2b2d31; border-radius: 4px;
         padding: 12px 16px; margin-top: 6px; }
.embed a { color: #00a8fc; text-decoration: none; }
.embed h3 { margin: 0 0 8px; font-size: 16px; }
.fields { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-top: 8px; }
.fields b { display: block; font-size: 13px; }
pre { background: #1e1f22; padding: 8px; border-radius: 4px; white-space: pre-wrap; }
.buttons button { border: 0; border-radius: 3px; color: #fff; padding: 6px 16px;
                  margin: 8px 8px 0 0; font-size: 14px; }
.s3 { background: #248046; } .s4 { background: #da373c; }
.teams { background: #f5f5f5; color: #242424; }
.card { background: #fff; border-radius: 6px; padding: 16px;
        box-shadow: 0 1px 3px rgba(0,0,0,.2); }
.card .big { font-size: 18px; font-weight: 600; }
.card table td { padding: 2px 12px 2px 0; } .card table td:first-child { font-weight: 600; }
.card .mono { font-family: monospace; font-size: 13px; white-space: pre-wrap; }
.card label { display: block; margin-top: 10px; font-size: 13px; }
.card textarea { width: 100%; height: 48px; }
.card .actions button { background: #fff; border: 1px solid #d1d1d1; border-radius: 4px;
                        padding: 6px 18px; margin: 10px 8px 0 0; }
.card .positive { color: #0e700e; } .card .destructive { color: #c50f1f; }
.card a { color: #5b5fc7; }
"""


def unescape(text: str) -> str:
    """What a client shows for escaped Markdown: the backslashes gone, the rest as text."""
    return re.sub(r"\\(.)", r"\1", text)


def inline(text: str) -> str:
    """Escaped Markdown as HTML: ``**bold**`` and ``[label](url)`` written by the channel
    itself, everything escaped by it shown as it was written."""
    out = []
    for part in re.split(r"(?<!\\)(\*\*.+?(?<!\\)\*\*|(?<!\\)\[[^\]]+\]\([^)]+\))", text):
        if part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(f"<b>{html.escape(unescape(part[2:-2]))}</b>")
        elif re.fullmatch(r"\[[^\]]+\]\([^)]+\)", part):
            label, url = re.fullmatch(r"\[([^\]]+)\]\(([^)]+)\)", part).groups()  # type: ignore[union-attr]
            out.append(f'<a href="{html.escape(url)}">{html.escape(unescape(label))}</a>')
        else:
            out.append(html.escape(unescape(part)))
    return "".join(out)


def description(text: str) -> str:
    """An embed's description: code blocks as ``pre``, lines as inline Markdown."""
    out = []
    for n, part in enumerate(text.split("```")):
        if n % 2:
            out.append(f"<pre>{html.escape(part.removeprefix('json').strip())}</pre>")
        else:
            out.append("<br>".join(inline(line) for line in part.strip("\n").split("\n")))
    return "".join(out)


def discord_page(message: dict[str, Any]) -> str:
    """The message as Discord lays it out: its text, the embed, the buttons."""
    embed = message["embeds"][0]
    fields = "".join(
        f"<div><b>{html.escape(f['name'])}</b>{inline(f['value'])}</div>" for f in embed["fields"]
    )
    buttons = "".join(
        f'<button class="s{b["style"]}">{html.escape(b["label"])}</button>'
        for row in message["components"]
        for b in row["components"]
    )
    return (
        f'<body class="discord"><div>{html.escape(message["content"])}</div>'
        f'<div class="embed"><h3><a href="{html.escape(embed["url"])}">'
        f"{inline(embed['title'])}</a></h3>{description(embed['description'])}"
        f'<div class="fields">{fields}</div></div><div class="buttons">{buttons}</div></body>'
    )


def teams_page(card: dict[str, Any]) -> str:
    """The Adaptive Card as Teams lays it out: its blocks, facts, input and actions."""
    parts = []
    for block in card["body"]:
        if block["type"] == "TextBlock":
            kind = "big" if block.get("size") == "Medium" else ""
            kind = "mono" if block.get("fontType") == "Monospace" else kind
            parts.append(f'<div class="{kind}">{inline(block["text"])}</div>')
        elif block["type"] == "FactSet":
            rows = "".join(
                f"<tr><td>{html.escape(f['title'])}</td><td>{inline(f['value'])}</td></tr>"
                for f in block["facts"]
            )
            parts.append(f"<table>{rows}</table>")
        elif block["type"] == "Input.Text":
            parts.append(
                f"<label>{html.escape(block['label'])}</label>"
                f'<textarea placeholder="{html.escape(block["placeholder"])}"></textarea>'
            )
    actions = "".join(
        f'<button class="{a.get("style", "")}">{html.escape(a["title"])}</button>'
        for a in card.get("actions", [])
    )
    inner = "".join(parts) + f'<div class="actions">{actions}</div>'
    return f'<body class="teams"><div class="card">{inner}</div></body>'


def main() -> None:
    """Write ``discord.png`` and ``teams.png`` beside the docs pages."""
    chromium = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/chromium"
    settings = Settings(public_url="https://approvals.example.com")
    pages = {
        "discord": discord_page(discord.render(SAMPLE, settings)),
        "teams": teams_page(teams.card(SAMPLE, settings)),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 608, "height": 200}, device_scale_factor=1)
        for name, body in pages.items():
            page.set_content(f"<!doctype html><style>{STYLE}</style>{body}")
            page.screenshot(path=str(HERE.parent / f"{name}.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
