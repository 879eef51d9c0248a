"""``Approvals``: the blocking client, a driver of the core with ``httpx.Client``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import httpx
from httpx_sse import connect_sse

from approvals.client import core
from approvals.client.core import BaseApprovals, Feed, Op, Pause, Reply
from approvals.client.emitter import ThreadEmitter
from approvals.client.inbox import Change, InboxFeed

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")


def blocking(
    op: Callable[Concatenate[BaseApprovals, P], Op[T]],
) -> Callable[Concatenate[Approvals, P], T]:
    """The core's operation ``op`` as a method of ``Approvals`` that blocks for its result."""

    def method(self: Approvals, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._drive(op(self, *args, **kwargs))

    return core.as_method(method, op, "Approvals")


def follow(http: httpx.Client, feed: Feed[Item]) -> Iterator[Item]:
    """Follow a server-sent-event feed, reconnecting as ``feed`` says."""
    while True:
        request, error = feed.request(), None
        try:
            with connect_sse(http, request.method, request.path, **request.options) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                feed.opened(source.response)
                for message in source.iter_sse():
                    if (item := feed.receive(message)) is not None:
                        yield item
        except httpx.HTTPError as exc:
            error = exc
        time.sleep(feed.dropped(error).seconds)


class Inbox(InboxFeed[httpx.Client]):
    """Iterate the inbox feed's changes; ``pending`` holds the pending approvals by id."""

    def __iter__(self) -> Iterator[Change]:
        return follow(self.http, self)


class Approvals(BaseApprovals[httpx.BaseTransport]):
    """A client of the approvals service for agent code that blocks while it waits."""

    _emitter: ThreadEmitter | None

    def _connect(self, transport: httpx.BaseTransport | None) -> None:
        self._make_http = functools.partial(httpx.Client, **self._http_options, transport=transport)
        self.http = self._make_http()
        self._emitter = None  # started by the first emit

    def _drive(self, op: Op[T]) -> T:
        """Run one of the core's operations: send its requests, sleep its pauses."""
        reply: Reply = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration as done:
                return cast(T, done.value)
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                reply = None
                continue
            try:
                reply = self.http.request(step.method, step.path, **step.options)
            except httpx.HTTPError as exc:
                reply = exc

    get = blocking(core.get)
    request_approval = blocking(core.request_approval)
    wait = blocking(core.wait)
    get_approval = blocking(core.get_approval)
    decide = blocking(core.decide)
    withdraw = blocking(core.withdraw)
    record_execution = blocking(core.record_execution)
    executable = blocking(core.executable)
    grants = blocking(core.grants)
    revoke_grant = blocking(core.revoke_grant)
    assign = blocking(core.assign)
    pending = blocking(core.pending)

    def inbox(self, **filters: Any) -> Inbox:
        """Follow the inbox feed (``agent_id``, ``run_id``, ``thread_id``, ``tool``,
        ``decidable``, ``after``): iterate it for the snapshot and each change; its
        ``pending`` dict holds the current pending approvals."""
        return Inbox(self.http, filters)

    def _guard(self, func: Callable[..., Any], ask: Callable[..., Op[Any]]) -> Callable[..., Any]:
        def approve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return self._drive(ask(args, kwargs))

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                call_args, call_kwargs = await asyncio.to_thread(approve, args, kwargs)
                return await func(*call_args, **call_kwargs)

            return run_async

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            call_args, call_kwargs = approve(args, kwargs)
            return func(*call_args, **call_kwargs)

        return run_sync

    def _sender(self) -> ThreadEmitter:
        if self._emitter is None:
            self._emitter = ThreadEmitter(self._make_http(), self._buffer)
        return self._emitter

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send every queued event now; False when some are still unsent at ``timeout``."""
        return self._emitter.flush(timeout) if self._emitter else True

    def events(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Follow the event stream (``GET /v1/events``'s filters), resuming with
        ``Last-Event-ID`` after a drop (``last_event_id=`` resumes from an event)."""
        return follow(self.http, core.EventFeed(filters))

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush queued events and close the connections."""
        if self._emitter is not None:
            self._emitter.close(timeout)
            self._emitter.http.close()
            self._emitter = None
        self.http.close()

    def __enter__(self) -> Approvals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
