"""``AsyncApprovals``: the asyncio client, a driver of the core with ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import httpx
from httpx_sse import aconnect_sse

from approvals.client import core
from approvals.client.core import BaseApprovals, Feed, Op, Pause, Reply
from approvals.client.emitter import TaskEmitter
from approvals.client.inbox import Change, InboxFeed

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")


def awaitable(
    op: Callable[Concatenate[BaseApprovals, P], Op[T]],
) -> Callable[Concatenate[AsyncApprovals, P], Coroutine[Any, Any, T]]:
    """The core's operation ``op`` as a coroutine method of ``AsyncApprovals``."""

    async def method(self: AsyncApprovals, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._drive(op(self, *args, **kwargs))

    return core.as_method(method, op, "AsyncApprovals")


async def follow(http: httpx.AsyncClient, feed: Feed[Item]) -> AsyncIterator[Item]:
    """Follow a server-sent-event feed, reconnecting as ``feed`` says."""
    while True:
        request, error = feed.request(), None
        try:
            async with aconnect_sse(http, request.method, request.path, **request.options) as sse:
                if sse.response.status_code >= 400:
                    await sse.response.aread()
                feed.opened(sse.response)
                async for message in sse.aiter_sse():
                    if (item := feed.receive(message)) is not None:
                        yield item
        except httpx.HTTPError as exc:
            error = exc
        await asyncio.sleep(feed.dropped(error).seconds)


class AsyncInbox(InboxFeed[httpx.AsyncClient]):
    """``async for`` the inbox feed's changes; ``pending`` holds the pending approvals."""

    def __aiter__(self) -> AsyncIterator[Change]:
        return follow(self.http, self)


class AsyncApprovals(BaseApprovals[httpx.AsyncBaseTransport]):
    """A client of the approvals service for asyncio agent code."""

    _emitter: TaskEmitter

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> None:
        options = self._http_options
        self.http = httpx.AsyncClient(**options, transport=transport)
        sync_http = functools.partial(httpx.Client, **options)  # for the exit hook
        self._emitter = TaskEmitter(
            httpx.AsyncClient(**options, transport=transport), self._buffer, sync_http
        )

    async def _drive(self, op: Op[T]) -> T:
        """Run one of the core's operations: send its requests, sleep its pauses.

        When the caller cancels it, ``core.Cancelled`` is thrown into the operation (a wait
        then withdraws its approval); the steps it still asks for run to their end within
        ``core.WITHDRAW_SECONDS``, and the cancellation is raised again."""
        reply: Reply = None
        cancelled: asyncio.CancelledError | None = None
        throw = False
        until = 0.0
        while True:
            try:
                step = op.throw(core.Cancelled()) if throw else op.send(reply)
            except StopIteration as done:
                if cancelled is not None:
                    raise cancelled from None
                return cast(T, done.value)
            except core.Cancelled:
                assert cancelled is not None
                raise cancelled from None
            throw = False
            if cancelled is not None:
                reply = await self._finish(step, until)
                continue
            try:
                reply = await self._step(step)
            except asyncio.CancelledError as exc:
                cancelled, throw = exc, True
                until = asyncio.get_running_loop().time() + core.WITHDRAW_SECONDS

    async def _step(self, step: core.Request | Pause) -> Reply:
        """Send one request (its answer, or the error it raised) or sleep one pause."""
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self.http.request(step.method, step.path, **step.options)
        except httpx.HTTPError as exc:
            return exc

    async def _finish(self, step: core.Request | Pause, until: float) -> Reply:
        """Run a step after the caller cancelled: in a task of its own (a task group or a
        cancel scope that cancels again cannot cut it short), given up at ``until``."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self._step(step))
        while not task.done() and (left := until - loop.time()) > 0:
            try:
                await asyncio.wait({task}, timeout=left)
            except asyncio.CancelledError:
                continue  # cancelled again (an anyio scope repeats it): keep to the bound
        if not task.done():
            task.cancel()
            return httpx.TimeoutException("gave up after the caller cancelled")
        return task.result()

    get = awaitable(core.get)
    request_approval = awaitable(core.request_approval)
    wait = awaitable(core.wait)
    get_approval = awaitable(core.get_approval)
    decide = awaitable(core.decide)
    withdraw = awaitable(core.withdraw)
    record_execution = awaitable(core.record_execution)
    executable = awaitable(core.executable)
    grants = awaitable(core.grants)
    revoke_grant = awaitable(core.revoke_grant)
    assign = awaitable(core.assign)
    pending = awaitable(core.pending)

    def inbox(self, **filters: Any) -> AsyncInbox:
        """Follow the inbox feed (``agent_id``, ``run_id``, ``thread_id``, ``tool``,
        ``decidable``, ``after``): ``async for`` the snapshot and each change; its
        ``pending`` dict holds the current pending approvals."""
        return AsyncInbox(self.http, filters)

    def _guard(self, func: Callable[..., Any], ask: Callable[..., Op[Any]]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"AsyncApprovals.require_approval wraps async functions; {func.__name__} "
                "is not one (use Approvals for plain functions)"
            )

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            call_args, call_kwargs = await self._drive(ask(args, kwargs))
            return await func(*call_args, **call_kwargs)

        return run_async

    def _sender(self) -> TaskEmitter:
        return self._emitter

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Send every queued event now; False when some are still unsent at ``timeout``."""
        return await self._emitter.flush(timeout)

    def events(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Follow the event stream (``GET /v1/events``'s filters), resuming with
        ``Last-Event-ID`` after a drop (``last_event_id=`` resumes from an event)."""
        return follow(self.http, core.EventFeed(filters))

    async def aclose(self, timeout: float | None = 10.0) -> None:
        """Flush queued events and close the connections."""
        await self._emitter.close(timeout)
        await self._emitter.http.aclose()
        await self.http.aclose()

    async def __aenter__(self) -> AsyncApprovals:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
