"""Platform simulators: serve each dialect's documented SSE format over real HTTP.

A simulator checks the bearer token, serves its frames, resumes after the
``Last-Event-ID`` it is sent (an SSE ``id:`` or, for platforms whose frames
carry none, the id inside the data), can drop the connection mid-stream, and
takes new frames while clients are connected.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Frame:
    """One SSE message: ``data`` is a dict (sent as JSON) or raw text."""

    data: Any
    event: str | None = None
    id: str | None = None
    resume_key: str | None = None  # what Last-Event-ID names this frame by, if not ``id``

    def encode(self) -> bytes:
        lines = []
        if self.event:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        text = self.data if isinstance(self.data, str) else json.dumps(self.data)
        lines.extend(f"data: {line}" for line in text.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()

    @property
    def key(self) -> str | None:
        return self.resume_key if self.resume_key is not None else self.id


@dataclass
class Simulator:
    """A platform's event stream on 127.0.0.1."""

    token: str = "sim-token"
    frames: list[Frame] = field(default_factory=list)
    preamble: list[Frame] = field(default_factory=list)  # sent first on every connection
    close_after_all: bool = False  # AG-UI: the stream ends after the final event
    keepalive: float = 0.5
    drop_after: int | None = None  # close the next connection after this many frames
    status: int = 200
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *frames: Frame) -> None:
        """Append frames; connected clients receive them."""
        with self._lock:
            self.frames.extend(frames)

    def start(self) -> Simulator:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with sim._lock:
                    sim.requests.append({"path": self.path, **headers})
                    status = sim.status
                if headers.get("authorization") != f"Bearer {sim.token}":
                    self._plain(401, '{"error": "unauthorized"}')
                    return
                if status != 200:
                    self._plain(status, '{"error": "simulated"}')
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._stream(headers.get("last-event-id"))

            def _plain(self, status: int, body: str) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def _stream(self, last_id: str | None) -> None:
                for frame in sim.preamble:
                    self.wfile.write(frame.encode())
                with sim._lock:
                    start = 0
                    if last_id is not None:
                        keys = [f.key for f in sim.frames]
                        start = keys.index(last_id) + 1 if last_id in keys else 0
                    drop, sim.drop_after = sim.drop_after, None
                sent = 0
                index = start
                idle = time.monotonic()
                while sim._server is not None:
                    with sim._lock:
                        pending = sim.frames[index:]
                    for frame in pending:
                        if drop is not None and sent >= drop:
                            return  # drop the connection mid-stream
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                        sent += 1
                        index += 1
                    if sim.close_after_all and index >= len(sim.frames):
                        return
                    if time.monotonic() - idle > sim.keepalive:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        idle = time.monotonic()
                    time.sleep(0.02)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/events") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()

    def last_event_ids(self) -> list[str | None]:
        """The Last-Event-ID of every request, in order."""
        with self._lock:
            return [r.get("last-event-id") for r in self.requests]
