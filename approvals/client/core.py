"""The sans-I/O core of ``Approvals`` and ``AsyncApprovals``.

Everything the two clients do alike lives here and does no I/O: the shared settings,
what each method asks of the service and what its answers mean, when to retry and how
long to pause. An operation is a generator: it yields a ``Request`` (the driver sends it
and sends back the ``httpx.Response``, or the ``httpx.HTTPError`` it raised) or a
``Pause`` (the driver sleeps, then sends back ``None``), and returns the method's result.
A ``Feed`` is the same for a server-sent-event stream. ``sync.py`` and ``aio.py`` only
drive them: with ``httpx.Client`` and ``time.sleep``, or ``httpx.AsyncClient`` and
``asyncio.sleep`` (httpx's own ``BaseClient`` is the pattern).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

import httpx
from httpx_sse import ServerSentEvent

from approvals.client import context
from approvals.client.calls import Call, Title, outcome
from approvals.client.context import RunIds
from approvals.client.decision import NOT_EXECUTABLE, ApprovalsError, Decision
from approvals.client.emitter import TaskEmitter, ThreadEmitter
from approvals.client.transport import (
    LONG_POLL,
    Backoff,
    api_error,
    approval_body,
    event_body,
    retryable,
    settings,
    transport_error,
)
from approvals.digest import approved_arguments, arguments_digest

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Callable[..., Any])
Item = TypeVar("Item")
Transport = TypeVar("Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)
log = logging.getLogger("approvals.client")

GRACE = 30.0  # seconds the wait outlasts an approval's timeout, for the service to expire it
STREAM_TIMEOUT = httpx.Timeout(10.0, read=90.0)  # the feeds send a keep-alive well within 90 s
WITHDRAW_SECONDS = 5.0  # how long a cancelled wait may spend withdrawing its approval


@dataclass(frozen=True)
class Request:
    """One HTTP request for a driver to send."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    timeout: httpx.Timeout | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` that are set."""
        named = {"params": self.params, "json": self.json, "headers": self.headers}
        named["timeout"] = self.timeout
        return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class Pause:
    """Sleep this long before the next request."""

    seconds: float


class Cancelled(Exception):
    """Thrown into an operation when its caller cancels it (``asyncio.CancelledError`` in
    ``AsyncApprovals``). A wait withdraws its approval, then lets it through; a driver
    gives the steps that follow at most ``WITHDRAW_SECONDS``."""


Reply = httpx.Response | httpx.HTTPError | None
Op = Generator[Request | Pause, Reply, T]  # an operation: see the module's docstring


def param(value: Any) -> str:
    """A filter's value as a query parameter (booleans lower-case, lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set):
        return ",".join(str(v) for v in value)
    return str(value)


def params(filters: dict[str, Any]) -> dict[str, str]:
    """The filters that are set, as query parameters."""
    return {name: param(value) for name, value in filters.items() if value is not None}


# -- operations -----------------------------------------------------------------------


def call(request: Request, *, deadline: float | None = None, retry: bool = True) -> Op[Any]:
    """One API call and its JSON; network errors, 5xx and 429 retried until ``deadline``."""
    backoff = Backoff()
    while True:
        reply = yield request
        if isinstance(reply, httpx.Response):
            if reply.status_code < 400:
                return reply.json() if reply.content else None
            error = api_error(reply)
            if not retryable(reply):
                raise error
        else:
            assert isinstance(reply, httpx.HTTPError)
            error = transport_error(reply)
        pause = backoff.next()
        if not retry or (deadline is not None and time.monotonic() + pause > deadline):
            raise error
        log.info("approvals: %s; retrying in %.1f s", error, pause)
        yield Pause(pause)


def long_poll(approval_id: str, deadline: float | None, latest: Decision | None) -> Op[Decision]:
    """Long-poll the approval until it is decided, expires or ``deadline`` passes."""
    backoff = Backoff()
    while True:
        left = LONG_POLL if deadline is None else min(LONG_POLL, deadline - time.monotonic())
        try:
            reply = yield Request(
                "GET",
                f"/v1/approvals/{approval_id}",
                params={"wait": f"{max(left, 0):.1f}"},
                timeout=httpx.Timeout(10.0, read=max(left, 0) + 15),
            )
        except Cancelled:
            yield from withdraw_quietly(approval_id)
            raise
        if isinstance(reply, httpx.Response):
            if reply.status_code < 400:
                latest = Decision.from_json(reply.json())
                if not latest.pending or left <= 0:
                    return latest
                backoff.reset()
                continue
            error = api_error(reply)
            if not retryable(reply):
                raise error
        else:
            assert isinstance(reply, httpx.HTTPError)
            error = transport_error(reply)
        pause = backoff.next()
        if deadline is not None and time.monotonic() + pause >= deadline:
            if latest is None:
                raise error
            return latest  # still pending as far as we know: the caller's timeout
        log.info("approvals: waiting for %s: %s; retrying in %.1f s", approval_id, error, pause)
        try:
            yield Pause(pause)
        except Cancelled:
            yield from withdraw_quietly(approval_id)
            raise


def withdraw_quietly(approval_id: str) -> Op[None]:
    """Withdraw an approval whose wait was cancelled, once and briefly; log a failure (it
    was decided meanwhile, the service is away) rather than raise it."""
    path = f"/v1/approvals/{approval_id}/withdraw"
    try:
        yield from call(Request("POST", path, timeout=httpx.Timeout(WITHDRAW_SECONDS)), retry=False)
        log.info("approvals: the wait was cancelled; withdrew %s", approval_id)
    except ApprovalsError as exc:
        log.warning(
            "approvals: the wait was cancelled; withdrawing %s failed: %s", approval_id, exc
        )


# The public methods both clients share, as operations: ``client`` is the ``self`` of
# ``Approvals.get`` and ``AsyncApprovals.get``, and so on (see ``as_method``).


def get(client: BaseApprovals, /, path: str, **params: Any) -> Op[Any]:
    """``GET`` an API path and return its JSON."""
    return (yield from call(Request("GET", path, params=params or None), retry=False))


def request_approval(
    client: BaseApprovals,
    /,
    title: str,
    *,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    run_id: str | None = None,
    thread_id: str | None = None,
    agent_id: str | None = None,
    timeout: float | None = None,
    on_timeout: str = "reject",
    key: str | None = None,
    callback_url: str | None = None,
    wait: bool = True,
    source: str | None = None,
) -> Op[Decision]:
    """Open an approval (or find the one ``key`` opened) and wait for its decision.

    ``timeout`` is the approval's own (it expires by ``on_timeout`` on the service)
    and bounds the wait; ``wait=False`` returns the pending approval at once. ``source``
    names where the request comes from (``api`` when unset). In ``AsyncApprovals``, a
    wait its caller cancels withdraws the approval first.
    """
    ids = context.current(client.defaults).merged(
        run_id=run_id, thread_id=thread_id, agent_id=agent_id
    )
    body = approval_body(
        title,
        tool=tool,
        arguments=arguments,
        detail=detail,
        ids=ids,
        timeout=timeout,
        on_timeout=on_timeout,
        key=key,
        callback_url=callback_url,
        source=source,
    )
    deadline = None if timeout is None else time.monotonic() + timeout + GRACE
    opened = Decision.from_json(
        (yield from call(Request("POST", "/v1/approvals", json=body), deadline=deadline))
    )
    if not wait or not opened.pending:
        return opened
    return (yield from long_poll(opened.approval_id, deadline, opened))


def wait(client: BaseApprovals, /, approval_id: str, timeout: float | None = None) -> Op[Decision]:
    """Wait until the approval is decided or expires; pending after ``timeout`` s. In
    ``AsyncApprovals``, a wait its caller cancels withdraws the approval first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return (yield from long_poll(approval_id, deadline, None))


def get_approval(client: BaseApprovals, /, approval_id: str) -> Op[Decision]:
    """The approval's current state."""
    body = yield from call(Request("GET", f"/v1/approvals/{approval_id}"), retry=False)
    return Decision.from_json(body)


def decide(
    client: BaseApprovals,
    /,
    approval_id: str,
    decision: str,
    *,
    comment: str | None = None,
    answer: str | None = None,
    arguments: dict[str, Any] | None = None,
    arguments_digest: str | None = None,
    grant: dict[str, Any] | None = None,
) -> Op[Decision]:
    """Approve, reject or answer an approval (needs ``approvals:resolve``). With
    ``arguments_digest`` (the ``argumentsDigest`` the reviewer was shown), a change of
    the arguments since is refused (``ApprovalsError`` 409 ``stale``); ``grant``
    (``{"scope": "run" | "agent", "seconds": N}``) also allows the tool for that
    scope, within the policy's cap."""
    body: dict[str, Any] = {"decision": decision}
    for name, value in (
        ("comment", comment),
        ("answer", answer),
        ("arguments", arguments),
        ("argumentsDigest", arguments_digest),
        ("grant", grant),
    ):
        if value is not None:
            body[name] = value
    path = f"/v1/approvals/{approval_id}/decision"
    return Decision.from_json((yield from call(Request("POST", path, json=body), retry=False)))


def record_execution(
    client: BaseApprovals, /, approval_id: str, arguments: dict[str, Any] | None
) -> Op[Decision]:
    """Record that the approved call runs now with ``arguments`` (send it just before
    running): the service answers once; a second time, or for arguments other than the
    approved ones, it refuses with ``ApprovalsError`` (409 ``already_executed``,
    ``stale`` or ``not_approved``) and the call must not run."""
    path = f"/v1/approvals/{approval_id}/execution"
    body = {"argumentsDigest": arguments_digest(arguments)}
    return Decision.from_json((yield from call(Request("POST", path, json=body))))


def executable(client: BaseApprovals, /, decision: Decision) -> Op[Decision]:
    """``decision`` once its execution receipt is recorded (an adapter calls this just
    before its framework runs an approved tool with ``decision.arguments``). When the
    service refuses the receipt (the call already ran, or its arguments changed), the
    decision comes back as ``not_executable`` with the service's reason in ``comment``,
    and the tool must not run. Other decisions come back unchanged."""
    if not decision.approved:
        return decision
    try:
        yield from record_execution(client, decision.approval_id, decision.arguments)
    except ApprovalsError as exc:
        if exc.status != 409:
            raise
        return dataclasses.replace(
            decision, status=NOT_EXECUTABLE, approved=False, comment=exc.message
        )
    return decision


def withdraw(client: BaseApprovals, /, approval_id: str) -> Op[Decision]:
    """Withdraw a pending approval this key requested: it ends as ``withdrawn``."""
    path = f"/v1/approvals/{approval_id}/withdraw"
    return Decision.from_json((yield from call(Request("POST", path), retry=False)))


def grants(client: BaseApprovals, /, everything: bool = False) -> Op[list[dict[str, Any]]]:
    """The standing grants in force (``everything``: ended ones too), newest first
    (needs ``approvals:resolve``)."""
    page = yield from get(client, "/v1/grants", status="all" if everything else "active")
    return list(page["grants"])


def assign(client: BaseApprovals, /, approval_id: str, to: str) -> Op[dict[str, Any]]:
    """Hand a pending approval to reviewer ``to`` (their delegate while they are away):
    claimed by them and sent to them; returns the approval's JSON."""
    path = f"/v1/approvals/{approval_id}/assign"
    return (yield from call(Request("POST", path, json={"to": to}), retry=False))


def revoke_grant(client: BaseApprovals, /, grant_id: str) -> Op[None]:
    """Revoke a standing grant: the next matching request asks a human again."""
    yield from call(Request("DELETE", f"/v1/grants/{grant_id}"), retry=False)


def pending(client: BaseApprovals, /, **filters: Any) -> Op[list[dict[str, Any]]]:
    """The queue's pending approvals (``run_id``, ``agent_id``… filter it)."""
    out: list[dict[str, Any]] = []
    query = {"status": "pending", **filters}
    while True:
        page = yield from get(client, "/v1/approvals", **query)
        out.extend(page["approvals"])
        if not page.get("nextCursor"):
            return out
        query["cursor"] = page["nextCursor"]


def as_method(method: M, op: Callable[..., Any], owner: str) -> M:
    """``method``, a driver's wrapper of the operation ``op``, named, documented and
    signed as ``owner``'s method: ``self`` first, returning the operation's result."""
    module = method.__module__
    functools.update_wrapper(method, op)
    signature = inspect.signature(op)
    _, *rest = signature.parameters.values()
    result = str(signature.return_annotation).removeprefix("Op[").removesuffix("]")
    method.__module__ = module
    method.__qualname__ = f"{owner}.{op.__name__}"
    method.__annotations__ = {**op.__annotations__, "return": result}
    del method.__annotations__[next(iter(signature.parameters))]
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[this, *rest], return_annotation=result
    )
    return method


# -- feeds ----------------------------------------------------------------------------


@dataclass
class Feed(Generic[Item]):
    """Following a server-sent-event feed: what to ask, what each message means, when to
    reconnect. A drop reconnects with ``Last-Event-ID``: nothing is missed or repeated."""

    path: str
    params: dict[str, str]
    position: str | None = None  # the last event seen, where a reconnect resumes
    backoff: Backoff = field(default_factory=Backoff)
    name: str = "feed"

    def request(self) -> Request:
        """The next (re)connection."""
        headers = {"Last-Event-ID": self.position} if self.position else {}
        return Request("GET", self.path, self.params, headers=headers, timeout=STREAM_TIMEOUT)

    def opened(self, response: httpx.Response) -> None:
        """Check the answer (its body read when it is an error): raise ``ApprovalsError``
        when it is final, ``httpx.HTTPStatusError`` when it is worth another try."""
        if response.status_code >= 400:
            if not retryable(response):
                raise api_error(response)
            raise httpx.HTTPStatusError("retry", request=response.request, response=response)
        self.backoff.reset()

    def receive(self, message: ServerSentEvent) -> Item | None:
        """What to yield for ``message``, if anything."""
        raise NotImplementedError

    def dropped(self, exc: httpx.HTTPError | None) -> Pause:
        """The connection ended (with ``exc``): how long to wait before reconnecting."""
        if exc is not None:
            log.info("approvals: %s dropped (%r); resuming after %s", self.name, exc, self.position)
        return Pause(self.backoff.next())


class EventFeed(Feed[dict[str, Any]]):
    """``GET /v1/events``: each event's JSON."""

    def __init__(self, filters: dict[str, Any]) -> None:
        position = filters.pop("last_event_id", None)
        super().__init__("/v1/events", params(filters), position, name="event stream")

    def receive(self, message: ServerSentEvent) -> dict[str, Any] | None:
        if message.event == "connected":
            self.position = self.position or message.json()["subscription"]["from"]
            return None
        if not message.data:
            return None
        if message.id:
            self.position = message.id
        event: dict[str, Any] = message.json()
        return event


# -- what the two clients share -------------------------------------------------------


class BaseApprovals(Generic[Transport]):
    """The settings and the methods that are the same in ``Approvals`` and
    ``AsyncApprovals``; each adds its connections (``_connect``), a driver (``_drive``)
    and what waits or streams."""

    _emitter: ThreadEmitter | TaskEmitter | None

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        agent_id: str | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        buffer: int = 10_000,
        timeout: float = 10.0,
        transport: Transport | None = None,
    ) -> None:
        self.url, headers = settings(url, key)
        self.defaults = RunIds(run_id=run_id, thread_id=thread_id, agent_id=agent_id)
        self._http_options: dict[str, Any] = {
            "base_url": self.url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout),
        }
        self._buffer = buffer
        self._connect(transport)

    def _connect(self, transport: Transport | None) -> None:
        """Open ``http`` (and set up the sender of ``emit``) with ``_http_options``."""
        raise NotImplementedError

    def _sender(self) -> ThreadEmitter | TaskEmitter:
        """The background sender of ``emit``."""
        raise NotImplementedError

    def _guard(self, func: Callable[..., Any], ask: Callable[..., Op[Any]]) -> Callable[..., Any]:
        """``func`` wrapped to run ``ask(args, kwargs)`` first and call it as it returns."""
        raise NotImplementedError

    # -- the decorator ------------------------------------------------------------------

    @overload
    def require_approval(self, fn: F, /) -> F: ...
    @overload
    def require_approval(
        self,
        fn: None = None,
        /,
        *,
        title: Title = None,
        timeout: float | None = None,
        on_timeout: str = "reject",
        tool: str | None = None,
        key: str | Callable[..., str] | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        agent_id: str | None = None,
    ) -> Callable[[F], F]: ...

    def require_approval(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        title: Title = None,
        timeout: float | None = None,
        on_timeout: str = "reject",
        tool: str | None = None,
        key: str | Callable[..., str] | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        agent_id: str | None = None,
    ) -> Any:
        """Ask a human before each call of the decorated function (``Approvals`` wraps
        plain and ``async def`` functions, ``AsyncApprovals`` ``async def`` ones)."""
        if on_timeout not in ("reject", "approve"):
            raise ValueError("on_timeout must be 'reject' or 'approve'")

        def ask(
            func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Op[tuple[tuple[Any, ...], dict[str, Any]]]:
            call = Call(func, args, kwargs)
            decision = yield from request_approval(
                self,
                call.title(title),
                tool=tool or func.__name__,
                arguments=call.arguments,
                run_id=run_id,
                thread_id=thread_id,
                agent_id=agent_id,
                timeout=timeout,
                on_timeout=on_timeout,
                key=call.title(key) if key is not None else None,
            )
            outcome(decision, on_timeout)
            approved = call.approved_call(decision)
            # The receipt before the run: a retried or restarted process that asks again
            # (with ``key``) finds the approval executed and does not run the call twice.
            yield from record_execution(
                self, decision.approval_id, approved_arguments(call.arguments, decision.edits)
            )
            return approved

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            return self._guard(func, functools.partial(ask, func))

        return decorate(fn) if fn is not None else decorate

    # -- runs and events ----------------------------------------------------------------

    def run(
        self,
        run_id: str | None = None,
        *,
        thread_id: str | None = None,
        agent_id: str | None = None,
    ) -> AbstractContextManager[RunIds]:
        """A block whose approvals and events share a run (and thread, agent) id."""
        return context.run(self.defaults, run_id, thread_id, agent_id)

    def emit(self, type: str, **fields: Any) -> None:
        """Queue a run event for the background sender (a thread, or a task of the
        running loop); never blocks."""
        body = event_body(type, fields, context.current(self.defaults))
        self._sender().put(body)

    @property
    def dropped(self) -> int:
        """How many queued events were dropped because the buffer was full."""
        return self._emitter.buffer.dropped if self._emitter else 0
