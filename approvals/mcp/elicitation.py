"""The flat form an MCP elicitation asks for, read the same way by the gate, the dashboard
and the terminal inbox.

An MCP server's ``elicitation/create`` (form mode) carries ``requestedSchema``: a JSON
object schema whose properties are each a string, a number, an integer, a boolean or a
single choice (``enum``, or ``oneOf`` of ``const``/``title``). The gate keeps it in the
approval's ``detail.requestedSchema``; the dashboard's form and ``approvals answer
--field NAME=VALUE`` turn what a reviewer typed into the answer, the JSON object of the
fields in the schema's types; the gate reads that answer back into the elicitation's
``content``. Pure functions on plain data: no I/O and no MCP SDK, so the server imports
it without the ``mcp`` extra. Everything in a schema came from an MCP server: untrusted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("string", "number", "integer", "boolean", "enum")
MAX_FIELDS = 100
MAX_TEXT = 10_000
TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0", "")
FIELD = "field:"  # the prefix of the dashboard form's inputs
INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Unsupported(ValueError):
    """A schema this form cannot ask for: not a flat object of the five kinds."""


@dataclass(frozen=True)
class Field:
    """One property of the form: its name, kind, label and the rules on its value."""

    name: str
    kind: str  # one of KINDS
    title: str
    description: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) of an enum
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    format: str | None = None


def fields(schema: Any) -> list[Field]:
    """The form's fields, in the schema's order; ``Unsupported`` says why not."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise Unsupported("the requested schema is not an object schema")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise Unsupported("the requested schema has no properties")
    if len(properties) > MAX_FIELDS:
        raise Unsupported(f"the requested schema has over {MAX_FIELDS} properties")
    required = schema.get("required") or []
    if not isinstance(required, list):
        raise Unsupported("the requested schema's required is not a list")
    return [_field(str(name), prop, name in required) for name, prop in properties.items()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _choices(prop: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if isinstance(prop.get("enum"), list):
        names = prop.get("enumNames")
        values = [v for v in prop["enum"] if isinstance(v, str)]
        labels = [_text(n) for n in (names if isinstance(names, list) else [])] + [""] * len(values)
        return tuple((v, labels[i] or v) for i, v in enumerate(values))
    if isinstance(prop.get("oneOf"), list):
        options = [o for o in prop["oneOf"] if isinstance(o, dict)]
        pairs = [(o.get("const"), _text(o.get("title"))) for o in options]
        return tuple((v, label or v) for v, label in pairs if isinstance(v, str))
    return ()


def _field(name: str, prop: Any, required: bool) -> Field:
    if not isinstance(prop, dict):
        raise Unsupported(f"{name}: not a schema")
    kind = prop.get("type")
    choices = _choices(prop)
    if kind == "string" and choices:
        kind = "enum"
    elif kind not in ("string", "number", "integer", "boolean"):
        raise Unsupported(f"{name}: {kind!r} is not a string, number, integer, boolean or enum")
    elif "enum" in prop or "oneOf" in prop:
        raise Unsupported(f"{name}: a choice must be among strings")
    field = Field(
        name=name,
        kind=kind,
        title=_text(prop.get("title")) or name,
        description=_text(prop.get("description")),
        required=required,
        choices=choices,
        minimum=_number(prop.get("minimum")),
        maximum=_number(prop.get("maximum")),
        min_length=_count(prop.get("minLength")),
        max_length=_count(prop.get("maxLength")),
        format=prop.get("format") if isinstance(prop.get("format"), str) else None,
    )
    if "default" in prop:
        try:
            return replace(field, default=check(field, prop["default"]))
        except ValueError:
            pass  # a default that breaks its own rules is not offered
    return field


def parse(field: Field, raw: str) -> Any:
    """A typed value from what a person typed; ``ValueError`` says what is wrong."""
    text = raw.strip() if field.kind != "string" else raw
    if field.kind == "boolean":
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError("must be true or false")
    if field.kind == "integer":
        if not INTEGER.fullmatch(text):
            raise ValueError("must be a whole number")
        return check(field, int(text))
    if field.kind == "number":
        try:
            number = float(text) if text.isascii() else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError("must be a number")
        return check(field, int(number) if number.is_integer() and "." not in text else number)
    return check(field, text)


def check(field: Field, value: Any) -> Any:
    """``value`` when it fits the field (as JSON gives it); ``ValueError`` otherwise."""
    if field.kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if field.kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if field.kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("must be a whole number")
            value = int(value)
        if field.minimum is not None and value < field.minimum:
            raise ValueError(f"must be at least {_plain(field.minimum)}")
        if field.maximum is not None and value > field.maximum:
            raise ValueError(f"must be at most {_plain(field.maximum)}")
        return value
    if not isinstance(value, str):
        raise ValueError("must be text")
    if field.kind == "enum":
        allowed = [v for v, _ in field.choices]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    longest = min(field.max_length or MAX_TEXT, MAX_TEXT)
    if len(value) > longest:
        raise ValueError(f"must be at most {longest} characters")
    if field.min_length is not None and len(value) < field.min_length:
        raise ValueError(f"must be at least {field.min_length} characters")
    if field.format == "email" and not EMAIL.fullmatch(value):
        raise ValueError("must be an email address")
    return value


def _plain(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def _missing(field: Field, content: dict[str, Any], errors: dict[str, str]) -> None:
    if field.default is not None:
        content[field.name] = field.default
    elif field.required:
        errors[field.name] = "is required"


def from_strings(
    form: list[Field], values: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The answer's content from typed text by field name, and the errors by field name.

    A field not given takes its default, or is an error when required; one given empty
    (but a boolean) is left out, or is an error when required."""
    content: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in form:
        raw = values.get(field.name)
        if raw is None:
            _missing(field, content, errors)
        elif raw.strip() == "" and field.kind != "boolean":
            if field.required:
                errors[field.name] = "is required"
        else:
            try:
                content[field.name] = parse(field, raw)
            except ValueError as exc:
                errors[field.name] = str(exc)
    return content, errors


def from_form(form: list[Field], data: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The answer's content from the dashboard form's ``field:NAME`` inputs (an unticked
    checkbox sends nothing: false), and the errors by field name."""
    values = {
        f.name: data.get(FIELD + f.name, "false" if f.kind == "boolean" else "") for f in form
    }
    return from_strings(form, values)


def answer_text(content: dict[str, Any]) -> str:
    """The answer a reviewer sends: the content as a JSON object."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def from_answer(form: list[Field], text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The elicitation's content from a reviewer's answer, and what is wrong with it.

    The dashboard and ``approvals answer --field`` send a JSON object of the fields;
    one typed by hand may carry numbers as text, which are read as typed; other keys are
    dropped. An answer that is not a JSON object fills the form's only text field."""
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        texts = [f for f in form if f.kind in ("string", "enum")]
        if len(texts) != 1:
            return {}, {"": "the answer is not a JSON object of the form's fields"}
        return from_strings(form, {texts[0].name: text})
    content: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in form:
        if field.name not in answer or answer[field.name] is None:
            _missing(field, content, errors)
            continue
        value = answer[field.name]
        try:
            if isinstance(value, str) and field.kind not in ("string", "enum"):
                content[field.name] = parse(field, value)
            else:
                content[field.name] = check(field, value)
        except ValueError as exc:
            errors[field.name] = str(exc)
    return content, errors


def describe(form: list[Field]) -> str:
    """One line per field for a terminal: name, kind, choices, required."""
    lines = []
    for f in form:
        kind = f"one of {', '.join(v for v, _ in f.choices)}" if f.kind == "enum" else f.kind
        extra = " (required)" if f.required else ""
        default = f", default {json.dumps(f.default)}" if f.default is not None else ""
        about = f": {f.description}" if f.description else ""
        lines.append(f"  {f.name} ({kind}{default}){extra}{about}")
    return "\n".join(lines)
