"""SSE responses that write each chunk straight to the server, past Litestar's send wrappers.

Litestar sends a streamed body through its generic path: an anyio task group per
response, then the application's ``before_send`` wrapper and the exception
middleware's wrapper around every chunk. For one subscriber that is nothing; for
thousands of subscribers woken by every event it was a fifth of the server's
fan-out time. ``EventStream`` sends the status line and headers the usual way
(so hooks, security headers and cookies still apply), then writes body chunks
with the server's own ``send``, which ``approvals.http.asgi.App`` keeps in the scope. A second task
waits for the client's disconnect, as Litestar's does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, cast

from litestar import Litestar, Request
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures.cookie import Cookie
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse, Stream
from litestar.types import Receive, Scope, Send

from approvals.http.asgi import RAW_SEND

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(Stream):
    """A ``text/event-stream`` response of byte chunks, written directly to the server.

    ``release`` runs once the response has ended, however it ended.
    """

    __slots__ = ("release",)

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=dict(HEADERS))
        self.release = release

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        **_: Any,
    ) -> ASGIResponse:
        """The ASGI response: Litestar's headers and cookies, this module's body writes."""
        merged = {**headers, **self.headers} if headers is not None else self.headers
        every = list(self.cookies) + list(cookies or ())
        return _DirectStream(
            background=self.background or background,
            content_length=0,
            cookies=every,
            encoded_headers=encoded_headers,
            headers=merged,
            is_head_response=is_head_response,
            iterator=cast("AsyncIterator[bytes]", self.iterator),
            media_type="text/event-stream",
            status_code=self.status_code or 200,
            release=self.release,
        )


class _DirectStream(ASGIStreamingResponse):
    __slots__ = ("raw_send", "release")

    def __init__(self, *, release: Callable[[], None] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = release
        self.raw_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.raw_send = cast("Send | None", cast("dict[str, Any]", scope).get(RAW_SEND))
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.release is not None:
                self.release()

    async def send_body(self, send: Send, receive: Receive) -> None:
        writer = asyncio.ensure_future(self._write(self.raw_send or send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(writer, watcher, return_exceptions=True)
        if not writer.cancelled() and writer.exception() is not None:
            raise cast(BaseException, writer.exception())

    async def _write(self, send: Send) -> None:
        iterator = cast("AsyncIterator[bytes]", self.iterator)
        try:
            async for chunk in iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            # Cancelled while the server wrote a chunk, the generator sits at a yield:
            # close it here so its own clean-up runs now, not when it is collected.
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
