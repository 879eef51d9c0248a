"""A bare broadcast server with sse-starlette, the baseline for bench/fanout.py.

POST /v1/events takes a JSON array and broadcasts each item to every subscriber
through its own asyncio queue; GET /v1/events streams them. No storage, no auth.
Run: python bench/bare_sse.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

subscribers: set[asyncio.Queue[dict[str, str]]] = set()
counter = 0


async def publish(request: Request) -> JSONResponse:
    """Broadcast posted events to every subscriber."""
    global counter
    items = await request.json()
    if isinstance(items, dict):  # one event, as approvals accepts too
        items = [items]
    for item in items:
        counter += 1
        message = {"id": str(counter), "event": item["type"], "data": json.dumps(item)}
        for queue in subscribers:
            queue.put_nowait(message)
    return JSONResponse({"published": len(items)}, status_code=201)


async def stream(request: Request) -> EventSourceResponse:
    """One subscriber's stream."""
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    subscribers.add(queue)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            yield {"event": "connected", "data": "{}"}
            while True:
                yield await queue.get()
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(events())


async def healthz(request: Request) -> JSONResponse:
    """Liveness."""
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/v1/events", publish, methods=["POST"]),
        Route("/v1/events", stream, methods=["GET"]),
        Route("/healthz", healthz),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
