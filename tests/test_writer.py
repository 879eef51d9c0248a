"""SQLite's writer thread: prepared statements through the sqlite3 cursor read and write
exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from approvals.auth.keys import (
    _LIVE_KEY,
    ONE_BY_ONE,
    KeyCache,
    create_key,
    hash_key,
    keys_table,
    revoke_key,
)
from approvals.connectors.resume import RESUMING_SOURCES, UPSTREAM_ID, sources_table
from approvals.core.db import parse_url, sqlite_pragmas
from approvals.delivery.channels import push
from approvals.delivery.channels.models import (
    channel_messages_table,
    push_subscriptions_table,
    routes_table,
)
from approvals.delivery.channels.notices import ALL_ROUTES, TOUCHED
from approvals.delivery.outbox import ACTIVE_ENDPOINTS, deliveries_table, endpoints_table
from approvals.events.log import EVENT_UPDATE, events_table
from approvals.events.writer import _PREPARED, SqliteWriter, ThreadConnection, drive
from approvals.queue.service import (
    ALL_POLICIES,
    APPROVAL_WITH_REQUEST,
    RESOLVE,
    VOTES_OF,
    approvals_table,
    policies_table,
    votes_table,
)
from conftest import Database

AT = "2026-12-06T03:00:00.000000Z"


def _event(event_id: int, **values: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "steering_request",
        "source": "agent",
        "created_at": AT,
        **values,
    }


def _approval(approval_id: str, event_id: int, **values: Any) -> dict[str, Any]:
    return {
        "id": approval_id,
        "event_id": event_id,
        "status": "pending",
        "title": "Post 5 ads?",
        "tool": "meta.post",
        "arguments": {"n": 5, "where": ["feed", "story"], "dry": False},
        "source": "agent",
        "on_timeout": "reject",
        "min_approvals": 2,
        "allow_self_approval": True,
        "reviewers": ["ann", "bob"],
        "require_reason": False,
        "require_reason_on_approve": True,
        "confirm": False,
        "allowed_decisions": ["approve", "reject"],
        "allow_edit": True,
        "created_at": AT,
        **values,
    }


def _insert(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for row in rows:  # one by one: the rows name different columns
        conn.execute(insert(table), row)


def _fill(conn: Any) -> None:
    _insert(
        conn,
        events_table,
        [
            _event(1, approval_id="apr_a", detail={"tool": "meta.post", "n": [1, 2.5, None]}),
            _event(2, approval_id="apr_b", external_id="up-2", title="ünïcode ✓"),
            _event(3, type="tick", status=None, cost_usd=0.25, cost_tokens=12),
        ],
    )
    _insert(
        conn,
        approvals_table,
        [_approval("apr_a", 1), _approval("apr_b", 2, reviewers=None, arguments=None)],
    )
    _insert(
        conn,
        votes_table,
        [
            {"approval_id": "apr_a", "principal": p, "decision": "approve", "created_at": AT}
            | {"event_id": 3}
            for p in ("ann", "bob")
        ],
    )
    _insert(
        conn,
        policies_table,
        [
            {"id": "pol_1", "action": "require", "reviewers": ["ann"], "confirm": True}
            | {"created_at": AT, "agent_id": "ads"},
            {"id": "pol_2", "action": "deny", "tool": "rm", "created_at": AT},
        ],
    )
    _insert(
        conn,
        endpoints_table,
        [
            {"id": "ep_1", "url": "https://a.example/h", "event_types": ["approval.*", "x"]}
            | {"secret": "s", "created_at": AT},
            {"id": "ep_2", "url": "https://b.example/h", "event_types": ["*"]}
            | {"secret": "s", "created_at": AT, "disabled_reason": "gone"},
        ],
    )
    _insert(
        conn,
        sources_table,
        [
            {"id": "src_1", "name": "agent", "dialect": "langgraph", "url": "https://u.example"}
            | {"token_encrypted": "t", "resume_url": "https://r.example", "resume_secret": "s"}
            | {"created_at": AT, "updated_at": AT},
            {"id": "src_2", "name": "other", "dialect": "langgraph", "url": "https://u.example"}
            | {"token_encrypted": "t", "resume_url": "", "resume_secret": "s"}
            | {"created_at": AT, "updated_at": AT},
        ],
    )
    _insert(
        conn,
        routes_table,
        [{"id": "rt_1", "channel": "slack", "target": "C1", "created_at": AT}],
    )
    _insert(
        conn,
        push_subscriptions_table,
        [
            {"id": f"dev_{n}", "username": name, "endpoint": f"https://push.example/{n}"}
            | {"p256dh": "k", "auth": "a", "label": "Chrome", "created_at": AT}
            for n, name in ((2, "ann"), (1, "bob"))
        ],
    )
    _insert(
        conn,
        deliveries_table,
        [
            {"id": f"dlv_p{n}", "msg_id": f"m{n}", "kind": push.KIND, "url": "push:ann/dev_2"}
            | {"event_id": 1, "event_type": push.REQUEST, "payload": f'{{"n": {n}}}'}
            | {"status": status, "created_at": AT, "updated_at": AT, "approval_id": "apr_a"}
            for n, status in ((1, "pending"), (2, "failed"), (3, "succeeded"))
        ],
    )
    _insert(
        conn,
        keys_table,
        [
            {"name": "agent", "prefix": "apk_x", "key_hash": "h1", "scopes": "events:write"}
            | {"created_at": AT, "expires_at": "2099-01-01T00:00:00.000000Z", "rate": "5/s"},
        ],
    )
    conn.execute(
        insert(channel_messages_table).values(
            approval_id="apr_a",
            channel="slack",
            conversation="C1",
            ref="1.2",
            delivery_id="dlv_1",
            created_at=AT,
        )
    )


READS: list[tuple[Any, dict[str, Any]]] = [
    (APPROVAL_WITH_REQUEST, {"approval_id": "apr_a"}),
    (APPROVAL_WITH_REQUEST, {"approval_id": "apr_b"}),
    (APPROVAL_WITH_REQUEST, {"approval_id": "apr_none"}),
    (VOTES_OF, {"approval_id": "apr_a"}),
    (ALL_POLICIES, {}),
    (ACTIVE_ENDPOINTS, {}),
    (RESUMING_SOURCES, {}),
    (UPSTREAM_ID, {"event_id": 2}),
    (UPSTREAM_ID, {"event_id": 1}),
    (ALL_ROUTES, {}),
    (TOUCHED, {"approval_id": "apr_a"}),
    (TOUCHED, {"approval_id": "apr_b"}),
    (_LIVE_KEY, {"digest": "h1"}),
    (_LIVE_KEY, {"digest": "h2"}),
    (push.EVERY_DEVICE, {}),
    (push.SENT_TO, {"approval_id": "apr_a"}),
    (push.SENT_TO, {"approval_id": "apr_b"}),
]
RESOLVED = {
    "status": "approved",
    "resolved_at": AT,
    "resolved_by": "ann",
    "decision": "approve",
    "comment": None,
    "edited_arguments": {"n": 4, "where": ["feed"]},
    "resolution_event_id": 3,
    "claimed_by": None,
    "claimed_until": None,
}


def _in_writer(db: Database, work: Any) -> Any:
    writer = SqliteWriter(parse_url(db.url), sqlite_pragmas)
    try:
        return writer.thread.submit(work, writer.connection()).result(30)
    finally:
        writer.close()


def test_prepared_statements_read_and_write_what_sqlalchemy_does(
    sqlite_database: Database,
) -> None:
    def work(conn: Any) -> None:
        with conn.begin() as transaction:
            _fill(conn)
            fast = ThreadConnection(conn)
            for statement, params in READS:
                raw = drive(fast.execute(statement, params))
                usual = conn.execute(statement, params)
                rows = usual.all()
                assert raw.all() == [tuple(r) for r in rows], statement
                assert drive(fast.execute(statement, params)).mappings().all() == [
                    dict(r._mapping) for r in rows
                ]
                first = drive(fast.execute(statement, params)).scalar()
                assert first == (rows[0][0] if rows else None)
            # The same update both ways, on two like approvals and their request events.
            for approval_id, event_id, run in (
                ("apr_a", 1, lambda s, p: drive(fast.execute(s, p))),
                ("apr_b", 2, conn.execute),
            ):
                done = run(RESOLVE, {"approval_id": approval_id, **RESOLVED})
                assert done.rowcount == 1
                again = run(RESOLVE, {"approval_id": approval_id, **RESOLVED})
                assert again.rowcount == 0  # only a pending approval is resolved
                run(
                    EVENT_UPDATE,
                    {"event_id": event_id, "status": "approved"} | {"detail": {"x": [1]}},
                )
            a, b = (
                dict(
                    conn.execute(select(approvals_table).where(approvals_table.c.id == i))
                    .one()
                    ._mapping
                )
                for i in ("apr_a", "apr_b")
            )
            assert a["edited_arguments"] == {"n": 4, "where": ["feed"]}
            assert {k: v for k, v in a.items() if k in RESOLVED} == {
                k: v for k, v in b.items() if k in RESOLVED
            }
            one, two = (
                conn.execute(select(events_table).where(events_table.c.id == i)).one()._mapping
                for i in (1, 2)
            )
            assert one["status"] == two["status"] == "approved"
            assert one["detail"] == two["detail"] == {"x": [1]}
            with pytest.raises(KeyError, match="approval_id"):
                drive(fast.execute(VOTES_OF, {}))
            transaction.rollback()

    _in_writer(sqlite_database, work)
    # Every statement marked for the raw path is compared here.
    assert {id(s) for s, _ in READS} | {id(RESOLVE), id(EVENT_UPDATE)} == set(_PREPARED)


@pytest.mark.parametrize("count", [3, 7])
def test_cached_keys_are_confirmed_alike_in_the_writer_thread_and_through_sqlalchemy(
    sqlite_database: Database, count: int
) -> None:
    # A batch's keys are looked up one by one (a few) or in one IN (many): either way a
    # revoked, expired or deleted key is refused and only it, on both execution paths.
    def work(conn: Any) -> None:
        with conn.begin() as transaction:
            keys = [create_key(conn, f"k{n}", ["events:write"]) for n in range(count)]
            create_key(conn, "brief", ["events:write"], timedelta(seconds=-1))
            revoke_key(conn, "k0")
            digests = {hash_key(k) for k in keys}
            conn.execute(keys_table.delete().where(keys_table.c.name == "k1"))
            expired = conn.execute(
                select(keys_table.c.key_hash).where(keys_table.c.name == "brief")
            ).scalar_one()
            digests.add(expired)
            assert (len(digests) <= ONE_BY_ONE) == (count == 3)  # both ways are run
            raw = drive(KeyCache().confirm(ThreadConnection(conn), digests))
            usual = drive(KeyCache().confirm(_Sync(conn), digests))
            assert {d: (e.status, e.message) for d, e in raw.items()} == {
                d: (e.status, e.message) for d, e in usual.items()
            }
            good = {hash_key(k) for k in keys[2:]}
            assert set(raw) == digests - good
            assert "expired at" in raw[expired].message
            assert raw[hash_key(keys[0])].message == "the API key is unknown or revoked"
            transaction.rollback()

    _in_writer(sqlite_database, work)


class _Sync:
    """SQLAlchemy's own execution behind the awaitable ``execute`` the log's code calls."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.conn.execute(statement, parameters)
