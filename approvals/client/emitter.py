"""Background senders of ``emit``: a bounded buffer, batches, retries with the same ids."""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import functools
import logging
import threading
import time
import weakref
from typing import Any

import httpx

from approvals.client.transport import Backoff, retryable

log = logging.getLogger("approvals.client")

MAX_BATCH = 100
LINGER = 0.05  # seconds to let a burst gather into one batch


class Buffer:
    """Events waiting to be sent; the oldest are dropped (and counted) past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.inflight: list[dict[str, Any]] = []
        self.dropped = 0
        self.refused = 0
        self.sent = 0
        self.lock = threading.Lock()

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event, dropping the oldest when full."""
        with self.lock:
            if len(self.queue) >= self.limit:
                self.queue.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "approvals: the service is unreachable and the event buffer is full "
                        "(%d events); %d oldest events dropped so far",
                        self.limit,
                        self.dropped,
                    )
            self.queue.append(event)

    def take(self) -> list[dict[str, Any]]:
        """Move the next batch in flight (or keep the one already there)."""
        with self.lock:
            if not self.inflight:
                count = min(MAX_BATCH, len(self.queue))
                self.inflight = [self.queue.popleft() for _ in range(count)]
            return list(self.inflight)

    def done(self) -> None:
        """The batch in flight was stored."""
        with self.lock:
            self.sent += len(self.inflight)
            self.inflight = []

    @property
    def empty(self) -> bool:
        with self.lock:
            return not self.queue and not self.inflight


def _outcome(buffer: Buffer, response: httpx.Response, batch: list[dict[str, Any]]) -> str:
    """``done``, ``retry`` or ``split`` for an answer to a batch."""
    if response.status_code < 300:
        return "done"
    if retryable(response):
        return "retry"
    if len(batch) > 1:
        return "split"
    buffer.refused += 1
    log.warning(
        "approvals: the service refused an event (%s): %s",
        response.status_code,
        response.text[:300],
    )
    return "done"


def _at_exit(ref: weakref.ref[Any]) -> None:
    emitter = ref()
    if isinstance(emitter, ThreadEmitter):
        emitter.close(5.0)
    elif isinstance(emitter, TaskEmitter):
        emitter.drain_at_exit()


class ThreadEmitter:
    """Sends buffered events from a daemon thread."""

    def __init__(self, http: httpx.Client, limit: int) -> None:
        self.http = http
        self.buffer = Buffer(limit)
        self.wake = threading.Event()
        self.idle = threading.Condition()
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="approvals-emit", daemon=True)
        self.thread.start()
        self._exit_hook = functools.partial(_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event; never blocks on the network."""
        self.buffer.put(event)
        self.wake.set()

    def _loop(self) -> None:
        backoff = Backoff()
        while True:
            self.wake.wait()
            self.wake.clear()
            time.sleep(LINGER)
            while not self.buffer.empty:
                if self._send(self.buffer.take()):
                    backoff.reset()
                elif self.closing:
                    return
                else:
                    time.sleep(backoff.next())
            with self.idle:
                self.idle.notify_all()
            if self.closing:
                return

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            response = self.http.post("/v1/events", json=batch)
        except httpx.HTTPError as exc:
            log.debug("approvals: sending %d events failed: %r", len(batch), exc)
            return False
        result = _outcome(self.buffer, response, batch)
        if result == "split":
            for event in batch:
                try:
                    one = self.http.post("/v1/events", json=event)
                except httpx.HTTPError:
                    return False
                if _outcome(self.buffer, one, [event]) == "retry":
                    return False
            result = "done"
        if result == "retry":
            return False
        self.buffer.done()
        return True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is stored; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.idle:
            while not self.buffer.empty:
                self.wake.set()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.idle.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the thread; False when events were left unsent."""
        if self.closing:
            return self.buffer.empty
        flushed = self.flush(timeout)
        self.closing = True
        self.wake.set()
        self.thread.join(1.0)
        atexit.unregister(self._exit_hook)
        if not flushed:
            log.warning("approvals: %d events were not sent", len(self.buffer.queue))
        return flushed


class TaskEmitter:
    """Sends buffered events from an asyncio task (started on the first ``emit``)."""

    def __init__(self, http: httpx.AsyncClient, limit: int, sync_http: Any) -> None:
        self.http = http
        self.buffer = Buffer(limit)
        self.wake: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.sync_http = sync_http  # a factory of httpx.Client for the exit hook
        self._exit_hook = functools.partial(_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event; start the sender task when a loop runs."""
        self.buffer.put(event)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: flushed by the next emit in a loop, or at exit
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.wake = asyncio.Event()
            self.task = loop.create_task(self._loop(), name="approvals-emit")
        assert self.wake is not None
        self.wake.set()

    async def _loop(self) -> None:
        assert self.wake is not None
        backoff = Backoff()
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(LINGER)
            while not self.buffer.empty:
                if await self._send(self.buffer.take()):
                    backoff.reset()
                else:
                    await asyncio.sleep(backoff.next())

    async def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            response = await self.http.post("/v1/events", json=batch)
        except httpx.HTTPError as exc:
            log.debug("approvals: sending %d events failed: %r", len(batch), exc)
            return False
        result = _outcome(self.buffer, response, batch)
        if result == "split":
            for event in batch:
                try:
                    one = await self.http.post("/v1/events", json=event)
                except httpx.HTTPError:
                    return False
                if _outcome(self.buffer, one, [event]) == "retry":
                    return False
            result = "done"
        if result == "retry":
            return False
        self.buffer.done()
        return True

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is stored; False on timeout."""
        if self.buffer.empty:
            return True
        if self.task is None or self.task.done():
            self.wake = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._loop())
        assert self.wake is not None
        self.wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.buffer.empty:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the task."""
        flushed = await self.flush(timeout)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self.task
            self.task = None
        atexit.unregister(self._exit_hook)
        return flushed

    def drain_at_exit(self) -> None:
        """At interpreter exit, send what is left with a short-lived sync client."""
        if self.buffer.empty:
            return
        with self.sync_http() as http:
            sender = _SyncDrain(http, self.buffer)
            deadline = time.monotonic() + 5.0
            while not self.buffer.empty and time.monotonic() < deadline:
                if not sender.send(self.buffer.take()):
                    time.sleep(0.2)


class _SyncDrain(ThreadEmitter):
    def __init__(self, http: httpx.Client, buffer: Buffer) -> None:  # no thread
        self.http = http
        self.buffer = buffer

    def send(self, batch: list[dict[str, Any]]) -> bool:
        return self._send(batch)
