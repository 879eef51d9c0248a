"""What SQLite's durable default costs: synchronous=FULL against NORMAL under the group commit.

Alternates the two settings (``--rounds`` times each, a fresh database per run) and
prints, for each run, single-event posts from 8 clients, batches of 100, approvals
opened by 8 clients and decisions by 8 clients.

Run: .venv/bin/python bench/durability.py [--events 4000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, sqlite_url
from decide import open_many, opening, throughput
from ingest import batches, singles


def measure(setting: str, events: int) -> str:
    """One run on a new SQLite database with ``APPROVALS_SQLITE_SYNCHRONOUS=setting``."""
    with sqlite_url() as url:
        server = Server(url, approvals_sqlite_synchronous=setting)
        token = key(url)
        resolver = key(url, "approvals:resolve", "approvals:read")
        try:
            posts = singles(server.base, token, events, 8)
            batched = batches(server.base, token, events * 5)
            opened = opening(server.base, token, events // 2)
            decided = throughput(server.base, resolver, open_many(server.base, token, events), 8)
        finally:
            server.stop()
    return (
        f"{setting:6}  posts {posts}; batches {batched:6.0f} events/s; "
        f"openings {opened}; decisions {decided}"
    )


def main() -> None:
    """Alternate FULL and NORMAL so that drift in the machine's load hits both alike."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for setting in ("full", "normal"):
            print(measure(setting, args.events), flush=True)


if __name__ == "__main__":
    main()
