"""SQLite's LISTEN: wake the other processes on one database file after an append.

Every process serving a SQLite database binds a Unix datagram socket in a
directory beside the file (``approvals.db-wake/<pid>.sock``). After a commit
that appended, the writer sends one tiny datagram to every other socket there;
a receiver only kicks its broker, which re-reads the log after its head, so a
lost or repeated datagram costs nothing but a read (the broker's poll still
catches up). Sockets of processes that died are removed by the next sender.
Measured in bench/cluster.py: a few milliseconds from commit to the other
process's subscribers, and no cost at all while nothing is appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import URL

from approvals.events.broker import Broker

log = logging.getLogger("approvals.wakeup")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


def wake_dir(url: URL) -> Path | None:
    """The folder of wake-up sockets for a SQLite file (None for an in-memory database)."""
    database = url.database
    if not database or database == ":memory:":
        return None
    path = Path(database).resolve()
    folder = path.parent / f"{path.name}-wake"
    if len(str(folder / "4194304.sock")) > MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / f"approvals-wake-{digest}"
    return folder


class Wakeup:
    """One process's socket: receives wake-ups and sends them to its peers."""

    def __init__(self, folder: Path, broker: Broker) -> None:
        self.folder = folder
        self.broker = broker
        self.path = folder / f"{os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        # The peers' socket paths: listed again when the folder changes, and at least once a
        # second (two sockets bound within one tick of the file system's clock leave one
        # modification time).
        self._listed: tuple[int, float, list[str]] = (-1, 0.0, [])

    def start(self) -> None:
        """Bind this process's socket and kick the broker on every datagram."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a process that had our pid
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(self.path))
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        assert self._sock is not None
        woken = False
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            woken = True
        if woken:
            self.broker.kick()

    def notify(self, head: int) -> None:
        """Tell every other process on this database that the log grew to ``head``."""
        try:
            peers = self._peers()
        except FileNotFoundError:
            return
        payload = str(head).encode()
        for target in peers:
            try:
                self._sender.sendto(payload, target)
            except (BlockingIOError, InterruptedError):
                pass  # its queue is full: it has wake-ups pending already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(OSError):
                        os.unlink(target)  # nobody listens there any more
                else:
                    log.debug("wake-up to %s failed: %s", target, exc)

    def _peers(self) -> list[str]:
        """The other processes' sockets (a socket bound or removed changes the folder)."""
        changed = os.stat(self.folder).st_mtime_ns
        now = time.monotonic()
        if changed != self._listed[0] or now - self._listed[1] > 1.0:
            mine = str(self.path)
            peers = [
                str(self.folder / name)
                for name in os.listdir(self.folder)
                if name.endswith(".sock") and str(self.folder / name) != mine
            ]
            self._listed = (changed, now, peers)
        return self._listed[2]

    def stop(self) -> None:
        """Close the socket and remove its file."""
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._sender.close()
