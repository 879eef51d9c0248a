"""``AsyncApprovals``: the asyncio client."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar, overload

import httpx
from httpx_sse import aconnect_sse

from approvals.client import context
from approvals.client.calls import Call, Title, outcome
from approvals.client.context import RunIds
from approvals.client.decision import Decision
from approvals.client.emitter import TaskEmitter
from approvals.client.sync import GRACE, _param
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

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("approvals.client")


class AsyncApprovals:
    """A client of the approvals service for asyncio agent code."""

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, headers = settings(url, key)
        self.defaults = RunIds(run_id=run_id, thread_id=thread_id, agent_id=agent_id)
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )
        self._emitter = TaskEmitter(
            httpx.AsyncClient(
                base_url=self.url,
                headers=headers,
                timeout=httpx.Timeout(timeout),
                transport=transport,
            ),
            buffer,
            functools.partial(
                httpx.Client, base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout)
            ),
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        deadline: float | None = None,
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        backoff = Backoff()
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                error = transport_error(exc)
            else:
                if response.status_code < 400:
                    return response.json() if response.content else None
                error = api_error(response)
                if not retryable(response):
                    raise error
            pause = backoff.next()
            if not retry or (deadline is not None and time.monotonic() + pause > deadline):
                raise error
            log.info("approvals: %s; retrying in %.1f s", error, pause)
            await asyncio.sleep(pause)

    async def get(self, path: str, **params: Any) -> Any:
        """``GET`` an API path and return its JSON."""
        return await self._call("GET", path, params=params or None, retry=False)

    async def request_approval(
        self,
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
    ) -> Decision:
        """Open an approval (or find the one ``key`` opened) and wait for its decision."""
        ids = context.current(self.defaults).merged(
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
        )
        deadline = None if timeout is None else time.monotonic() + timeout + GRACE
        opened = Decision.from_json(
            await self._call("POST", "/v1/approvals", json=body, deadline=deadline)
        )
        if not wait or not opened.pending:
            return opened
        return await self._wait(opened.approval_id, deadline, opened)

    async def wait(self, approval_id: str, timeout: float | None = None) -> Decision:
        """Wait until the approval is decided or expires; pending after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return await self._wait(approval_id, deadline, None)

    async def _wait(
        self, approval_id: str, deadline: float | None, latest: Decision | None
    ) -> Decision:
        backoff = Backoff()
        while True:
            left = LONG_POLL if deadline is None else min(LONG_POLL, deadline - time.monotonic())
            try:
                response = await self.http.get(
                    f"/v1/approvals/{approval_id}",
                    params={"wait": f"{max(left, 0):.1f}"},
                    timeout=httpx.Timeout(10.0, read=max(left, 0) + 15),
                )
            except httpx.HTTPError as exc:
                error = transport_error(exc)
            else:
                if response.status_code < 400:
                    latest = Decision.from_json(response.json())
                    if not latest.pending or left <= 0:
                        return latest
                    backoff.reset()
                    continue
                if not retryable(response):
                    raise api_error(response)
                error = api_error(response)
            pause = backoff.next()
            if deadline is not None and time.monotonic() + pause >= deadline:
                if latest is None:
                    raise error
                return latest
            log.info("approvals: waiting for %s: %s; retrying in %.1f s", approval_id, error, pause)
            await asyncio.sleep(pause)

    async def get_approval(self, approval_id: str) -> Decision:
        """The approval's current state."""
        return Decision.from_json(
            await self._call("GET", f"/v1/approvals/{approval_id}", retry=False)
        )

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        comment: str | None = None,
        answer: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Decision:
        """Approve, reject or answer an approval (needs ``approvals:resolve``)."""
        body: dict[str, Any] = {"decision": decision}
        for name, value in (("comment", comment), ("answer", answer), ("arguments", arguments)):
            if value is not None:
                body[name] = value
        return Decision.from_json(
            await self._call(
                "POST", f"/v1/approvals/{approval_id}/decision", json=body, retry=False
            )
        )

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
        """Ask a human before each call of the decorated ``async def`` function."""
        if on_timeout not in ("reject", "approve"):
            raise ValueError("on_timeout must be 'reject' or 'approve'")

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            if not inspect.iscoroutinefunction(func):
                raise TypeError(
                    f"AsyncApprovals.require_approval wraps async functions; {func.__name__} "
                    "is not one (use Approvals for plain functions)"
                )

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                call = Call(func, args, kwargs)
                decision = await self.request_approval(
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
                call_args, call_kwargs = call.approved_call(decision)
                return await func(*call_args, **call_kwargs)

            return run_async

        return decorate(fn) if fn is not None else decorate

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
        """Queue a run event for the background task; never blocks."""
        self._emitter.put(event_body(type, fields, context.current(self.defaults)))

    @property
    def dropped(self) -> int:
        """How many queued events were dropped because the buffer was full."""
        return self._emitter.buffer.dropped

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Send every queued event now; False when some are still unsent at ``timeout``."""
        return await self._emitter.flush(timeout)

    async def events(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Follow the event stream, resuming with ``Last-Event-ID`` after a drop."""
        last: str | None = filters.pop("last_event_id", None)
        backoff = Backoff()
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            params = {k: _param(v) for k, v in filters.items() if v is not None}
            try:
                async with aconnect_sse(
                    self.http,
                    "GET",
                    "/v1/events",
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=90.0),
                ) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        if not retryable(source.response):
                            raise api_error(source.response)
                        raise httpx.HTTPStatusError(
                            "retry", request=source.response.request, response=source.response
                        )
                    backoff.reset()
                    async for message in source.aiter_sse():
                        if message.event == "connected":
                            last = last or message.json()["subscription"]["from"]
                            continue
                        if not message.data:
                            continue
                        if message.id:
                            last = message.id
                        yield message.json()
            except httpx.HTTPError as exc:
                log.info("approvals: event stream dropped (%r); resuming after %s", exc, last)
            await asyncio.sleep(backoff.next())

    async def aclose(self, timeout: float | None = 10.0) -> None:
        """Flush queued events and close the connections."""
        await self._emitter.close(timeout)
        await self._emitter.http.aclose()
        await self.http.aclose()

    async def __aenter__(self) -> AsyncApprovals:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
