"""The OpenAPI document (``/schema/openapi.json``) and its reference page (``/docs``).

Litestar builds the document from the handlers' types; :func:`finish` adds what
types cannot say: the bearer scheme on every ``/v1`` operation, the SSE media
type of the streams, the union body of ``appendEvents``, and closed request
objects (``additionalProperties: false``).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.enums import MediaType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import Response

from approvals import __version__
from approvals.core.contract import Body, Out
from approvals.events.schema import MAX_BATCH, EventIn
from approvals.views.render import render

SSE_OPERATIONS = {"readEvents": "the SSE stream", "streamApprovals": "the inbox feed"}
NDJSON_SCHEMA = {
    "type": "string",
    "description": "The export (format=ndjson): one event per line, each line an EventOut as "
    "JSON, in log order, up to the position in the X-Log-Head header.",
}
SSE_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Events message: `event: connected` first (its `data` the "
    "subscription), then one per event (`id:` the log position, `event:` its type, `data:` "
    "one line of JSON); `: keepalive` comments between.",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `approvals keys create NAME --scope S`.",
}


def _structs(base: type) -> list[type]:
    found: list[type] = []
    todo: list[type] = list(base.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def _parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or header value is never null: drop the null Litestar allows."""
    out = dict(schema)
    if isinstance(out.get("type"), list):
        kinds = [kind for kind in out["type"] if kind != "null"]
        out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if isinstance(out.get("enum"), list):
        out["enum"] = [value for value in out["enum"] if value is not None]
    branches = [b for b in out.get("oneOf", ()) if b.get("type") != "null"]
    if "oneOf" in out and len(branches) == 1:
        rest = {key: value for key, value in out.items() if key != "oneOf"}
        return {**branches[0], **rest}
    return out


Batch = Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Complete Litestar's document with what the handlers' types cannot say."""
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = BEARER
    # msgspec describes its own structs exactly (bounds, formats, closed objects), so
    # their component schemas come from msgspec; Litestar's references still point there.
    structs = [*_structs(Body), *_structs(Out)]
    (event_body, *_), schemas = msgspec.json.schema_components(
        [EventIn | Batch, *structs], ref_template="#/components/schemas/{name}"
    )
    for kind in _structs(Body):
        schemas[kind.__name__]["additionalProperties"] = False
    components.setdefault("schemas", {}).update(schemas)
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
            for parameter in operation.get("parameters", ()):
                parameter["schema"] = _parameter_schema(parameter["schema"])
            op_id = operation.get("operationId")
            body = MANUAL_BODIES.get(str(op_id))
            if body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body(event_body)}},
                }
            if op_id in SSE_OPERATIONS:
                ok = operation["responses"]["200"]
                page = ok.get("content", {}).get("text/event-stream")
                # The JSON page first: generated clients read the first media type.
                ok["content"] = {} if page is None else {"application/json": page}
                ok["content"]["text/event-stream"] = {"schema": SSE_SCHEMA}
                ok["description"] = f"{SSE_OPERATIONS[op_id]} (text/event-stream) or a JSON page"
                if op_id == "readEvents":
                    ok["content"]["application/x-ndjson"] = {"schema": NDJSON_SCHEMA}
                    ok["description"] += ", or with format=ndjson the export"
    return doc


# Operations whose body is checked item by item, documented here (see their handlers).
MANUAL_BODIES: dict[str, Any] = {
    "appendEvents": lambda events: events,
    "decideApprovals": lambda _: {
        "type": "array",
        "minItems": 1,
        "maxItems": 500,
        "description": "Each item a DecisionItem; an item that is not one gets its own 422 "
        "in `results` beside the others' outcomes.",
        "items": {"type": "object", "description": "see DecisionItem"},
    },
}


class ContractJson(JsonRenderPlugin):
    """Serve the finished document at ``/schema/openapi.json``."""

    _done: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Render the document once, finished."""
        if self._done is None:
            self._done = self.render_json(request, finish(openapi_schema))
        return self._done


def config() -> OpenAPIConfig:
    """The OpenAPI settings: the JSON document only; ``/docs`` is the reference page."""
    return OpenAPIConfig(
        title="approvals",
        version=__version__,
        description=(
            "Human-in-the-loop approvals for AI agents: an SSE event log, an approval queue, "
            "webhooks and platform connectors. Every /v1 operation takes "
            "`Authorization: Bearer <key>`. Errors are `{error, message, field}`."
        ),
        path="/schema",
        render_plugins=[ContractJson(path="/openapi.json")],
    )


@get("/docs", include_in_schema=False, opt={"any_query": True})
async def docs_page() -> Response[str]:
    """The interactive API reference (Swagger UI, vendored, no inline script)."""
    return Response(render("docs.html"), media_type=MediaType.HTML)
