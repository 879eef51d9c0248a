"""What ``require_approval`` does around a call: bind, describe, check the edits, decide."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any, get_type_hints

from approvals.client.decision import Answered, Decision, Expired, Rejected, Withdrawn

Title = str | Callable[..., str] | None


class CannotSerialize(TypeError):
    """An argument that cannot be sent to the service as JSON."""


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 models
        return dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(type(value).__qualname__)


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (dataclasses and pydantic models included)."""
    return json.loads(json.dumps(value, default=_default, allow_nan=False))


class Call:
    """One decorated call: its bound arguments and their JSON."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.bound = self.signature.bind(*args, **kwargs)
        self.bound.apply_defaults()
        self.arguments: dict[str, Any] = {}
        for name, value in self.bound.arguments.items():
            try:
                self.arguments[name] = to_json(value)
            except (TypeError, ValueError) as exc:
                raise CannotSerialize(
                    f"{fn.__name__}(): argument {name!r} ({type(value).__qualname__}) cannot be "
                    "sent for approval as JSON; pass JSON values, dataclasses or pydantic "
                    f"models ({exc})"
                ) from exc

    def title(self, title: Title) -> str:
        """The approval's title: a format string or a callable over the arguments."""
        values = dict(self.bound.arguments)
        if callable(title):
            return str(title(**values))
        if title is not None:
            return title.format(**values)
        shown = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"Run {self.fn.__name__}({shown})?"

    def approved_call(self, decision: Decision) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments to run with, a reviewer's edits applied."""
        edited = decision.arguments or {}
        if not decision.edited:
            return self.bound.args, self.bound.kwargs
        unknown = sorted(set(edited) - set(self.signature.parameters))
        if unknown:
            raise TypeError(
                f"{self.fn.__name__}(): the approved arguments name {unknown[0]!r}, "
                "which the function does not take"
            )
        hints = _hints(self.fn)
        bound = self.signature.bind_partial()
        bound.arguments.update(self.bound.arguments)
        for name, value in edited.items():
            if name in self.arguments and value == self.arguments[name]:
                continue  # unchanged: keep the original Python object
            bound.arguments[name] = coerce(
                value, hints.get(name, inspect.Parameter.empty), f"{self.fn.__name__}.{name}"
            )
        return bound.args, bound.kwargs


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn)
    except Exception:  # unresolvable forward references: check nothing
        return {}


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check (and convert) an edited JSON value against a parameter's annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError:
        return _basic_coerce(value, annotation, where)
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise TypeError(f"{where}: the approved value {value!r} does not fit: {exc}") from exc
    except Exception:  # an annotation pydantic cannot build a validator for
        return _basic_coerce(value, annotation, where)


def _basic_coerce(value: Any, annotation: Any, where: str) -> Any:
    if not isinstance(annotation, type):
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return annotation(**value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool):
        raise TypeError(f"{where}: the approved value {value!r} is not an int")
    if not isinstance(value, annotation):
        raise TypeError(f"{where}: the approved value {value!r} is not a {annotation.__qualname__}")
    return value


def outcome(decision: Decision, on_timeout: str) -> None:
    """Return when the call may run; raise ``Rejected``, ``Answered``, ``Withdrawn`` or
    ``Expired``."""
    if decision.status == "approved":
        return
    if decision.status == "rejected":
        raise Rejected(decision)
    if decision.status == "answered":
        raise Answered(decision)
    if decision.status == "withdrawn":
        raise Withdrawn(decision)
    # expired on the service, or still pending when the caller's own timeout ran out
    if decision.approved or (decision.pending and on_timeout == "approve"):
        return
    raise Expired(decision)
