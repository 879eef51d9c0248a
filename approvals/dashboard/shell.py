"""The installable app's shell: its manifest, its service worker and its offline page.

The worker (``static/sw.js``) is served from the site's root so that its scope is the whole
dashboard. It keeps ``SHELL`` (and later static files) in a cache named after ``version()``,
a digest of every file under ``static/``: a deploy that changes one installs a new worker,
which fetches the files again and drops the old cache. It never keeps a page with data or an
API answer (docs/channels.md, "On a phone").
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from litestar import Response, get

from approvals.views.render import page

STATIC = Path(__file__).resolve().parents[1] / "static"  # a link to ../static in the repository
WORKER = STATIC / "sw.js"
MANIFEST = STATIC / "manifest.webmanifest"
OFFLINE = "/offline"
# What the worker stores when it installs: what every page loads (templates/base.html, the
# request page's script) and the offline page. tests/test_pwa.py checks base.html against it.
SHELL = (
    "/static/app.css",
    "/static/app.js",
    "/static/pwa.js",
    "/static/vendor/htmx-4.0.1.min.js",
    "/static/vendor/hx-sse-4.0.1.min.js",
    "/static/icons/icon.svg",
    "/static/icons/icon-192.png",
    "/static/icons/icon-512.png",
    "/static/icons/maskable-512.png",
    "/static/icons/apple-touch-icon.png",
    OFFLINE,
)
NO_CACHE = {"Cache-Control": "no-cache"}  # the browser asks again each time (304s aside)


def version(root: Path = STATIC) -> str:
    """A digest of the files under ``root``: their names and contents (read again only when
    a file's size or modification time changed)."""
    files = sorted(path for path in root.rglob("*") if path.is_file())
    stamp = tuple((str(path.relative_to(root)), *_stat(path)) for path in files)
    return _digest(root, stamp)


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


@lru_cache(maxsize=8)
def _digest(root: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, *_ in stamp:
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def worker_source(root: Path = STATIC) -> str:
    """``sw.js`` with its version and the shell's URLs filled in."""
    source = (root / WORKER.name).read_text()
    for marker in ('"__VERSION__"', '["__SHELL__"]'):
        if marker not in source:
            raise RuntimeError(f"static/sw.js lost its {marker} marker")
    return source.replace('"__VERSION__"', json.dumps(version(root))).replace(
        '["__SHELL__"]', json.dumps(list(SHELL))
    )


@get("/sw.js", include_in_schema=False)
async def service_worker() -> Response[str]:
    """The service worker, at the root so that its scope is the whole dashboard."""
    return Response(worker_source(), media_type="text/javascript; charset=utf-8", headers=NO_CACHE)


@get("/manifest.webmanifest", include_in_schema=False)
async def manifest() -> Response[bytes]:
    """The web app manifest: name, start page, display, colours and icons."""
    return Response(MANIFEST.read_bytes(), media_type="application/manifest+json", headers=NO_CACHE)


@get(OFFLINE, include_in_schema=False)
async def offline_page() -> Response[str]:
    """The page the worker shows when a page cannot load (the same for everyone: no data)."""
    return page("offline.html", user=None, csrf="", nav="")
