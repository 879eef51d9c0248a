"""The typed HTTP contract: base structs, checked JSON bodies and strict query strings.

Every ``/v1`` body is a :class:`Body` struct and every answer an :class:`Out` struct,
so Litestar validates and documents both from one declaration. Two checks run
before Litestar's own: :class:`ApiRequest` decodes JSON bodies with the service's
rules for hostile input, and :func:`refuse_unknown_query` answers 400 for a query
parameter the operation does not declare.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Self

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import (
    BodyKwarg,
    CookieParameter,
    DependencyKwarg,
    HeaderParameter,
    ParameterKwarg,
    PathParameter,
)
from litestar.types import Empty

from approvals.core.errors import ApiError, describe, invalid

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
JSON_TYPES = ("application/json", "+json")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A request body: camelCase properties, unknown properties refused."""


class Out(msgspec.Struct, rename="camel", kw_only=True):
    """A response body: camelCase properties."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **given: Any) -> Self:
        """The answer for a table row: each field from the column of its name; ``given`` wins."""
        taken = {f: row[f] for f in cls.__struct_fields__ if f not in given and f in row}
        return cls(**taken, **given)


class ErrorBody(Out):
    """Every error answer: a code, what to do, and the field or scope at fault."""

    error: str
    message: str
    field: str | None = None
    scope: str | None = None
    retry_after: int | None = None  # 429: whole seconds, as in the Retry-After header


DESCRIPTIONS = {
    400: "Invalid input: an unknown query parameter, a malformed value, or a body that is not JSON",
    401: "No API key, or an unknown, revoked or expired one",
    403: "The key lacks the scope the operation needs (named in `scope`)",
    404: "No such resource",
    409: "Conflict: already resolved or expired, or the name is taken",
    413: "The body is over the size limit (1 MiB by default)",
    415: "The body is not sent as application/json",
    422: "The body is well-formed but a field is invalid (named in `field`)",
    429: "Over the key's rate limit or open-stream cap; retry after `Retry-After` seconds",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The documented error answers of an operation (401, 403 and 429 always)."""
    codes = sorted({400, 401, 403, 429, *statuses})
    return {
        code: ResponseSpec(
            data_container=ErrorBody, description=DESCRIPTIONS[code], generate_examples=False
        )
        for code in codes
    }


WRITE_ERRORS = (413, 415, 422)
NO_BODY = (b"", b"{}", b"null")  # what an operation without a body accepts (clients send {})


async def refuse_body(request: Request[Any, Any, Any]) -> None:
    """A 400 naming ``body`` when an operation that takes none gets one: it would be ignored,
    and a caller who thinks it set something should hear that it did not."""
    if (await request.body()).strip() not in NO_BODY:
        raise ApiError(400, "invalid", "body: this operation takes no body", field="body")


def convert(raw: Any, kind: Any, where: str = "body") -> Any:
    """Convert a decoded JSON value to ``kind``; 422 naming the field at fault otherwise."""
    try:
        return msgspec.convert(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `")
        path = at.rstrip("`")[1:]  # "$.a[0]" -> ".a[0]"
        key = path.lstrip(".")
        field, text = describe(message, where + path, kind, key)
        raise invalid(field, text) from exc


# -- hostile JSON -------------------------------------------------------------------------

_SUSPECT = re.compile(rb"\\u0000|\d{19}")
_HIGH = rb"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(rb"%s(?!%s)|(?<!%s)%s" % (_HIGH, _LOW, _HIGH, _LOW))


def decode_body(body: bytes) -> Any:
    """Decode a JSON body under the service's rules; 400 naming the field otherwise.

    The rules, the same on both databases: nesting deeper than 64 levels, NUL
    characters and lone surrogates in strings or keys, and whole numbers outside
    the signed 64-bit range are refused; duplicate keys keep the last value.
    """
    if not body.strip():
        raise invalid("body", "a JSON body is required", status=400)
    try:
        value = msgspec.json.decode(body)
    except RecursionError as exc:
        raise invalid("body", f"nests deeper than {MAX_DEPTH} levels", status=400) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            raise invalid("body", "is not valid UTF-8", status=400) from exc
        if _LONE_SURROGATE.search(body):
            raise invalid(
                "body", "holds a lone UTF-16 surrogate escape; send valid Unicode", status=400
            ) from exc
        raise invalid("body", f"is not valid JSON ({exc})", status=400) from exc
    # Most bodies cannot break a rule: no NUL escape, no long number, few brackets.
    if _SUSPECT.search(body) or body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        check_value(value)
    return value


def check_value(value: Any, where: str = "body") -> None:
    """Refuse deep nesting, NUL characters and out-of-range whole numbers in ``value``."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise invalid(_path(where, path), "must not contain NUL characters", status=400)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise invalid(_path(where, path), "is outside the signed 64-bit range", status=400)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                # Name the field the deep value hangs from, not the whole path down.
                field = _path(where, path[:2])
                raise invalid(field, f"nests deeper than {MAX_DEPTH} levels", 400)
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in key:
                        raise invalid(_path(where, path), "has a key with a NUL character", 400)
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))


def _path(where: str, path: tuple[str | int, ...]) -> str:
    out = where
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class ApiRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded by :func:`decode_body`."""

    async def json(self) -> Any:
        """The checked JSON body; 415 when it is declared as something else."""
        if self._json is Empty:
            kind = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind and not (kind == JSON_TYPES[0] or kind.endswith(JSON_TYPES[1])):
                raise ApiError(
                    415,
                    "invalid",
                    f"Content-Type: send the body as application/json, not {kind[:100]}",
                    field="Content-Type",
                )
            value = decode_body(await self.body())
            # Litestar converts bodies leniently (0 for false, "5" for 5); JSON is strict here.
            body_type = body_type_of(self.route_handler)
            if body_type is not None:
                convert(value, body_type)
            self._json = value
        return self._json


@cache
def body_type_of(handler: HTTPRouteHandler) -> Any:
    """The struct type a handler declares for its body, if any."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return None
    kind = parameter.annotation
    return kind if isinstance(kind, type) and issubclass(kind, msgspec.Struct) else None


# -- query strings ------------------------------------------------------------------------

_RESERVED = {"request", "data", "state", "headers", "cookies", "query", "scope", "body"}


@cache
def declared_query(handler: HTTPRouteHandler) -> frozenset[str] | None:
    """The query parameters ``handler`` declares, or None when it takes any."""
    if handler.opt.get("any_query"):
        return None
    path_names = {name for path in handler.paths for name in re.findall(r"{(\w+)(?::\w+)?}", path)}
    dependencies = set(handler.resolve_dependencies())
    names = set(handler.opt.get("query", ()))  # pages that read request.query_params
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in _RESERVED or name in path_names or name in dependencies:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, BodyKwarg | DependencyKwarg):
            continue
        if isinstance(kwarg, ParameterKwarg):
            if (
                isinstance(kwarg, HeaderParameter | CookieParameter | PathParameter)
                or kwarg.header
                or kwarg.cookie
            ):
                continue
            names.add(kwarg.query or kwarg.name or name)
        else:
            names.add(name)
    return frozenset(names)


async def refuse_unknown_query(request: Request[Any, Any, Any]) -> None:
    """Answer 400 for a query parameter the operation does not declare, given twice or null.

    ``async`` though it never awaits: Litestar runs a plain function hook in a worker
    thread, a hand-off per request.
    """
    known = declared_query(request.route_handler)
    if known is None:
        return
    for name, value in request.query_params.multi_items():
        if name not in known:
            raise unknown_parameter(name, known)
        if len(request.query_params.getall(name)) > 1:
            raise ApiError(400, "invalid", f"{name}: give it once", field=name)
        if value == "null":
            raise ApiError(
                400, "invalid", f"{name}: give a value, or leave the parameter out", field=name
            )


def unknown_parameter(name: str, known: frozenset[str] | set[str]) -> ApiError:
    """The 400 for an unknown query parameter, suggesting a close known one."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    close = [snake] if snake in known else difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = ", ".join(sorted(known)) or "none"
    return ApiError(
        400,
        "invalid",
        f"{name[:100]}: is not a query parameter here (known: {listed}){hint}",
        field=name[:100],
    )
