"""Reading an MCP elicitation's form: which schemas it takes, and how typed text and a
reviewer's answer become the content the MCP server receives."""

from __future__ import annotations

import json

import pytest

from approvals.mcp import elicitation

SCHEMA = {
    "type": "object",
    "properties": {
        "confirm": {"type": "boolean", "title": "Confirm"},
        "reason": {"type": "string", "maxLength": 20},
        "days": {"type": "integer", "minimum": 0, "maximum": 365, "default": 0},
        "ratio": {"type": "number"},
        "color": {"type": "string", "enum": ["red", "blue"], "enumNames": ["Red"]},
        "size": {"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l"}]},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["confirm", "color"],
}


def form() -> list[elicitation.Field]:
    return elicitation.fields(SCHEMA)


def test_a_flat_schema_becomes_fields_in_order_with_their_rules() -> None:
    fields = {f.name: f for f in form()}
    assert list(fields) == ["confirm", "reason", "days", "ratio", "color", "size", "email"]
    assert [f.kind for f in form()] == [
        "boolean", "string", "integer", "number", "enum", "enum", "string",
    ]  # fmt: skip
    assert fields["confirm"].required and fields["confirm"].title == "Confirm"
    assert fields["color"].choices == (("red", "Red"), ("blue", "blue"))
    assert fields["size"].choices == (("s", "Small"), ("l", "l"))
    assert fields["days"].default == 0 and fields["days"].maximum == 365


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {"type": "array"},
        {"type": "object", "properties": {}},
        {"type": "object", "properties": {"x": {"type": "object"}}},
        {"type": "object", "properties": {"x": {"type": "array", "items": {"type": "string"}}}},
        {"type": "object", "properties": {"x": {"type": "number", "enum": [1, 2]}}},
        {"type": "object", "properties": {"x": "string"}},
        {"type": "object", "properties": {"x": {"type": "string"}}, "required": "x"},
    ],
)
def test_schemas_the_form_cannot_ask_for_are_refused(schema: object) -> None:
    with pytest.raises(elicitation.Unsupported):
        elicitation.fields(schema)


def test_typed_text_becomes_typed_values_or_errors_by_field() -> None:
    content, errors = elicitation.from_strings(
        form(),
        {"confirm": "yes", "days": "7", "ratio": "0.5", "color": "blue", "size": "l", "reason": ""},
    )
    assert errors == {}
    assert content == {"confirm": True, "days": 7, "ratio": 0.5, "color": "blue", "size": "l"}
    _, errors = elicitation.from_strings(
        form(),
        {
            "confirm": "maybe",
            "days": "366",
            "ratio": "a lot",
            "color": "green",
            "reason": "x" * 21,
            "email": "nobody",
        },
    )
    assert errors == {
        "confirm": "must be true or false",
        "days": "must be at most 365",
        "ratio": "must be a number",
        "color": "must be one of red, blue",
        "reason": "must be at most 20 characters",
        "email": "must be an email address",
    }
    assert elicitation.from_strings(form(), {"days": "1.5", "confirm": "1", "color": "red"})[1] == {
        "days": "must be a whole number"
    }


def test_missing_fields_take_their_default_or_are_required() -> None:
    content, errors = elicitation.from_strings(form(), {})
    assert content == {"days": 0}
    assert errors == {"confirm": "is required", "color": "is required"}


def test_the_dashboard_form_reads_an_unticked_box_as_false() -> None:
    content, errors = elicitation.from_form(
        form(), {"field:color": "red", "field:days": "", "field:reason": "because"}
    )
    assert errors == {}
    assert content == {"confirm": False, "color": "red", "reason": "because"}  # days: blank


def test_an_answer_is_read_back_into_content_and_checked() -> None:
    answer = elicitation.answer_text({"confirm": True, "color": "red", "days": 3, "extra": 1})
    content, errors = elicitation.from_answer(form(), answer)
    assert errors == {} and content == {"confirm": True, "color": "red", "days": 3}
    by_hand = json.dumps({"confirm": "true", "color": "red", "days": "4"})
    assert elicitation.from_answer(form(), by_hand) == (
        {"confirm": True, "color": "red", "days": 4},
        {},
    )
    _, errors = elicitation.from_answer(form(), json.dumps({"confirm": 1, "color": "red"}))
    assert errors == {"confirm": "must be true or false"}
    assert elicitation.from_answer(form(), "just text")[1] == {
        "": "the answer is not a JSON object of the form's fields"
    }
    one = elicitation.fields({"type": "object", "properties": {"name": {"type": "string"}}})
    assert elicitation.from_answer(one, "Ada") == ({"name": "Ada"}, {})
