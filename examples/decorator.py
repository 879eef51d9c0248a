"""One line of human approval around a tool: ``@client.require_approval``.

    make run                                              # terminal 1: the service
    export APPROVALS_KEY=$(.venv/bin/approvals keys create agent \\
        --scope events:write --scope approvals:read | tail -1)
    .venv/bin/python examples/decorator.py                # terminal 2: waits for you
    .venv/bin/approvals pending                           # terminal 3 (a reviewer key), or
                                                          # the dashboard at /

Approve it (``approvals approve ID --arguments '{"count": 2}'`` to edit), reject it
with a reason, or answer it: the script prints what happened.
"""

from __future__ import annotations

from approvals.client import Answered, Approvals, Expired, Rejected

client = Approvals()  # APPROVALS_URL (default http://127.0.0.1:8000) and APPROVALS_KEY


@client.require_approval(title="Post {count} ads to {platform}?", timeout=900)
def post_ads(count: int, platform: str) -> str:
    """The tool the agent wants to run."""
    return f"posted {count} ads to {platform}"


def main() -> None:
    with client.run(agent_id="ads-bot") as run:
        client.emit("run.started", title="Planning the Monday campaign")
        print(f"run {run.run_id}: asking a human before posting ads…")
        try:
            print(post_ads(5, "meta"))
        except Rejected as exc:
            print(f"rejected by {exc.resolved_by}: {exc.comment}")
        except Answered as exc:
            print(f"the reviewer answered: {exc.answer}")
        except Expired:
            print("nobody decided in time")
        client.emit("run.finished", title="Done")
    client.close()


if __name__ == "__main__":
    main()
