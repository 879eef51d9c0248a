"""``Approvals`` and ``AsyncApprovals`` offer the same methods, and share one sans-I/O core."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

from approvals.client import Approvals, ApprovalsError, AsyncApprovals, Decision, core

# Names that are inherently one-sided, each with its counterpart on the other client.
SYNC_ONLY = {
    "close": "aclose",  # httpx's naming: the async client closes with a coroutine
    "__enter__": "__aenter__",  # `with` / `async with`
    "__exit__": "__aexit__",
}
# Async methods that are not coroutine functions, and why.
NOT_COROUTINES = {
    "require_approval",  # a decorator (factory); the wrapper it returns is a coroutine
    "run",  # a (sync) context manager: context variables, no I/O
    "emit",  # queues and returns at once; never waits
    "events",  # returns an async iterator (`async for`)
    "inbox",  # returns an async iterable feed (`async for`)
}


def _public(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    instance = cls("http://127.0.0.1:9", "k")
    names |= {name for name in vars(instance) if not name.startswith("_")}
    if isinstance(instance, Approvals):
        instance.close()
    return names | ({*SYNC_ONLY, *SYNC_ONLY.values()} & set(dir(cls)))


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_both_clients_have_the_same_public_names() -> None:
    sync, aio = _public(Approvals), _public(AsyncApprovals)
    assert sync - aio == set(SYNC_ONLY)
    assert aio - sync == set(SYNC_ONLY.values())


@pytest.mark.parametrize("name", sorted(_public(Approvals)))
def test_each_method_takes_the_same_parameters(name: str) -> None:
    sync = inspect.getattr_static(Approvals, name, None)
    aio = inspect.getattr_static(AsyncApprovals, SYNC_ONLY.get(name, name), None)
    if sync is None:  # an instance attribute (url, defaults, http)
        assert aio is None
        return
    if isinstance(sync, property):
        assert isinstance(aio, property)
        return
    assert _params(sync) == _params(aio)
    assert not inspect.iscoroutinefunction(sync)
    assert inspect.iscoroutinefunction(aio) is (name not in NOT_COROUTINES)


def test_the_constructors_take_the_same_parameters() -> None:
    assert _params(Approvals.__init__) == _params(AsyncApprovals.__init__)


# -- the core, driven by hand: no sockets, no sleeping ---------------------------------


def _answer(status: int, body: Any = None) -> httpx.Response:
    request = httpx.Request("GET", "http://svc/v1/approvals/apr_1")
    return httpx.Response(status, json=body, request=request)


def test_a_call_retries_5xx_and_network_errors_then_returns_the_json() -> None:
    op = core.call(core.Request("GET", "/v1/x"))
    assert next(op) == core.Request("GET", "/v1/x")
    assert isinstance(op.send(_answer(503, {"error": "unavailable"})), core.Pause)
    assert op.send(None) == core.Request("GET", "/v1/x")
    assert isinstance(op.send(httpx.ConnectError("refused")), core.Pause)
    op.send(None)
    with pytest.raises(StopIteration) as done:
        op.send(_answer(200, {"ok": True}))
    assert done.value.value == {"ok": True}


def test_a_call_without_retry_raises_the_services_error() -> None:
    op = core.call(core.Request("GET", "/v1/x"), retry=False)
    next(op)
    with pytest.raises(ApprovalsError) as caught:
        op.send(_answer(503, {"error": "unavailable", "message": "later"}))
    assert caught.value.status == 503
    op = core.call(core.Request("GET", "/v1/x"))
    next(op)
    with pytest.raises(ApprovalsError, match="nope"):
        op.send(_answer(404, {"error": "not_found", "message": "nope"}))


def test_waiting_long_polls_until_a_decision() -> None:
    client = Approvals("http://127.0.0.1:9", "k")
    op = core.wait(client, "apr_1")
    first = next(op)
    assert isinstance(first, core.Request) and first.path == "/v1/approvals/apr_1"
    assert first.params == {"wait": "30.0"}
    pending = {"id": "apr_1", "status": "pending"}
    assert isinstance(op.send(_answer(200, pending)), core.Request)  # polls again at once
    with pytest.raises(StopIteration) as done:
        op.send(_answer(200, {"id": "apr_1", "status": "approved", "decision": "approve"}))
    decision: Decision = done.value.value
    assert decision.approved
    client.close()
