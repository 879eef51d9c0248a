"""A simulated agent: runs that stream tokens and tool calls, then ask a human."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

SCENARIOS: list[dict[str, Any]] = [
    {
        "agent": "growth-bot",
        "thinking": "Drafting five ad variants for the winter campaign, budget $2,000.",
        "tool": "post_ads",
        "arguments": {"platform": "meta", "count": 5, "daily_budget_usd": 400},
        "title": "About to post 5 ads to Meta at $400/day. Approve?",
    },
    {
        "agent": "support-agent",
        "thinking": "Customer #88412 was double-charged for order 5531; a refund fixes it.",
        "tool": "issue_refund",
        "arguments": {"order": "5531", "amount_usd": 129.0, "reason": "duplicate charge"},
        "title": "Refund $129.00 to customer #88412 for a duplicate charge?",
    },
    {
        "agent": "ops-agent",
        "thinking": "The staging database holds 1.2M stale session rows older than 90 days.",
        "tool": "delete_rows",
        "arguments": {"database": "staging", "table": "sessions", "older_than_days": 90},
        "title": "Delete 1.2M session rows older than 90 days from staging?",
    },
    {
        "agent": "sales-assistant",
        "thinking": "Follow-up email drafted for the 48 leads who opened the pricing page.",
        "tool": "send_email",
        "arguments": {"to": "48 leads", "template": "pricing-follow-up", "send_at": "now"},
        "title": "Send the pricing follow-up email to 48 leads now?",
    },
]


def run_demo(
    url: str,
    key: str,
    *,
    runs: int = 4,
    pace: float = 0.3,
    echo: Callable[[str], None] = print,
    rng: random.Random | None = None,
) -> list[str]:
    """Post ``runs`` simulated runs; return the approval ids they opened."""
    rng = rng or random.Random()
    opened = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        for number in range(runs):
            scenario = SCENARIOS[number % len(SCENARIOS)]
            run = f"run_{secrets.token_hex(4)}"
            thread = f"thr_{secrets.token_hex(3)}"
            common = {"agentId": scenario["agent"], "runId": run, "threadId": thread}
            events: list[dict[str, Any]] = [
                {"type": "run_status", "status": "running", "category": "lifecycle", **common}
            ]
            for word in scenario["thinking"].split(" "):
                events.append(
                    {
                        "type": "token",
                        "category": "output",
                        "detail": {"delta": word + " "},
                        **common,
                    }
                )
            events.append(
                {
                    "type": "tool_call",
                    "category": "tool_use",
                    "title": f"Calling {scenario['tool']}",
                    "detail": {"tool": scenario["tool"], "arguments": scenario["arguments"]},
                    **common,
                }
            )
            for start in range(0, len(events), 6):
                answer = http.post("/v1/events", json=events[start : start + 6])
                answer.raise_for_status()
                time.sleep(pace * rng.uniform(0.5, 1.5))
            approval = http.post(
                "/v1/approvals",
                json={
                    "title": scenario["title"],
                    "timeoutSeconds": 3600,
                    "detail": {"tool": scenario["tool"], "arguments": scenario["arguments"]},
                    **common,
                },
            )
            approval.raise_for_status()
            opened.append(approval.json()["id"])
            echo(f"{scenario['agent']} paused {run}: {scenario['title']}")
    echo(f"{len(opened)} requests wait in the inbox at {url}/")
    return opened
