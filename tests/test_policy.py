"""Policy rules as pure functions."""

from __future__ import annotations

from approvals.queue.policy import DEFAULT, Rule, refusal, select, tally


def rule(id: str, agent: str | None, tool: str | None, action: str, at: str = "1", **kw) -> Rule:  # type: ignore[no-untyped-def]
    return Rule(id=id, agent_id=agent, tool=tool, action=action, created_at=at, **kw)


def test_no_rule_means_one_human_decides() -> None:
    assert select([], "a", "post_ads") == DEFAULT
    assert DEFAULT.action == "require" and DEFAULT.min_approvals == 1


def test_the_most_specific_rule_wins() -> None:
    rules = [
        rule("any", None, None, "auto_approve"),
        rule("agent", "a1", None, "deny"),
        rule("tool", None, "post_ads", "require", min_approvals=2),
        rule("both", "a1", "post_ads", "auto_approve"),
    ]
    assert select(rules, "a1", "post_ads").policy_id == "both"
    assert select(rules, "a2", "post_ads").policy_id == "tool"
    assert select(rules, "a2", "post_ads").min_approvals == 2
    assert select(rules, "a1", "refund").policy_id == "agent"
    assert select(rules, "a2", "refund").policy_id == "any"
    assert select(rules, None, None).policy_id == "any"


def test_rules_for_other_agents_or_tools_do_not_apply() -> None:
    rules = [rule("x", "a9", None, "deny"), rule("y", None, "delete_db", "deny")]
    assert select(rules, "a1", "post_ads") == DEFAULT


def test_among_equals_the_newest_wins() -> None:
    rules = [
        rule("old", None, "t", "deny", at="2026-01-01"),
        rule("new", None, "t", "auto_approve", at="2026-02-01"),
    ]
    assert select(rules, None, "t").policy_id == "new"


def test_requester_may_not_decide_unless_allowed() -> None:
    assert refusal(principal="bot", requested_by="bot", allow_self_approval=False, reviewers=None)
    assert (
        refusal(principal="bot", requested_by="bot", allow_self_approval=True, reviewers=None)
        is None
    )
    assert (
        refusal(principal="alice", requested_by="bot", allow_self_approval=False, reviewers=None)
        is None
    )


def test_only_listed_reviewers_may_decide() -> None:
    reason = refusal(
        principal="eve", requested_by="bot", allow_self_approval=False, reviewers=["alice", "bob"]
    )
    assert reason is not None and "eve" in reason and "alice" in reason
    assert (
        refusal(
            principal="bob",
            requested_by="bot",
            allow_self_approval=False,
            reviewers=["alice", "bob"],
        )
        is None
    )


def test_quorum_counts_distinct_principals() -> None:
    assert not tally(2, ["alice"])
    assert not tally(2, ["alice", "alice"])
    assert tally(2, ["alice", "bob"])
    assert tally(1, ["alice"])
