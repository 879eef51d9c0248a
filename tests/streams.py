"""A test SSE subscriber that reads a real stream in a thread."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse


class Subscription:
    """Reads SSE messages from ``GET /v1/events`` into a queue until closed."""

    def __init__(
        self,
        base: str,
        key: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.messages: queue.Queue[ServerSentEvent] = queue.Queue()
        self.comments = 0
        self.error: BaseException | None = None
        self._client = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
            timeout=httpx.Timeout(30, read=60),
        )
        self._params = params or {}
        self._response: httpx.Response | None = None
        self._opened = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise TimeoutError("the stream did not open")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            with connect_sse(self._client, "GET", "/v1/events", params=self._params) as source:
                self._response = source.response
                source.response.raise_for_status()
                self._opened.set()
                for line in source.response.iter_lines():
                    self._feed(line)
        except BaseException as exc:
            if not self._closed:
                self.error = exc
        finally:
            self._opened.set()

    _buffer: list[str]

    def _feed(self, line: str) -> None:
        if not hasattr(self, "_buffer"):
            self._buffer = []
        if line == "":
            if self._buffer:
                fields: dict[str, str] = {}
                data: list[str] = []
                for entry in self._buffer:
                    name, _, value = entry.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name in ("id", "event", "retry"):
                        fields[name] = value
                self._buffer = []
                if data or fields:
                    self.messages.put(
                        ServerSentEvent(
                            event=fields.get("event", "message"),
                            data="\n".join(data),
                            id=fields.get("id", ""),
                            retry=int(fields["retry"]) if "retry" in fields else None,
                        )
                    )
            return
        if line.startswith(":"):
            self.comments += 1
            return
        self._buffer.append(line)

    def take(self, count: int, timeout: float = 10) -> list[ServerSentEvent]:
        """The next ``count`` messages (``connected`` included); fail if they don't come."""
        out: list[ServerSentEvent] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(out)} of {count} messages: {out}")
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                continue
        return out

    def events(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next ``count`` log events as canonical JSON (skipping ``connected``)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            remaining = max(deadline - time.monotonic(), 0.001)
            (message,) = self.take(1, remaining)
            if message.event == "connected":
                continue
            event = json.loads(message.data)
            assert event["id"] == message.id
            assert event["type"] == message.event
            out.append(event)
        return out

    def quiet(self, seconds: float) -> list[ServerSentEvent]:
        """Messages that arrive within ``seconds`` (none expected, usually)."""
        time.sleep(seconds)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        """Drop the connection (as a client that goes away would)."""
        self._closed = True
        if self._response is not None:
            # Shut the socket down so the reading thread's blocked recv returns at once.
            stream = self._response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._client.close()
        self._thread.join(5)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
