"""The filters Autom adds or changes."""

from __future__ import annotations

from typing import Any

import pytest

from autom.templating import TemplateError, render_value

CONTEXT: dict[str, Any] = {
    "data": {"b": 1, "a": [True, None, "é<>&'"]},
    "text": '{"k": [1, 2.5, null]}',
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ data | tojson }}", '{"b": 1, "a": [true, null, "é<>&\'"]}'),
        ("{{ data.a | tojson(indent=2) }}", '[\n  true,\n  null,\n  "é<>&\'"\n]'),
        ("{{ text | fromjson }}", {"k": [1, 2.5, None]}),
        ("{{ (text | fromjson).k[1] }}", 2.5),
        ("{{ 'héllo:wörld' | b64encode }}", "aMOpbGxvOnfDtnJsZA=="),
        ("{{ 'aMOpbGxvOnfDtnJsZA==' | b64decode }}", "héllo:wörld"),
        ("{{ 'aMOp\nbGxv' | b64decode }}", "héllo"),
        ("{{ data.a | string }}", '[true, null, "é<>&\'"]'),
        ("{{ 3 | string }}", "3"),
        ("{{ missing | default('fallback') }}", "fallback"),
        ("{{ data.a | length }}", 3),
        ("{{ 'abc' | upper }}", "ABC"),
        ("{{ [3, 1, 2] | sort | first }}", 1),
        ("{{ [1, 2, 3] | sum }}", 6),
        ("{{ 2.567 | round(2) }}", 2.57),
        ("{{ 'a b c' | replace(' ', '-') }}", "a-b-c"),
        ("{{ [1, 2, 3, 4] | batch(2) | list }}", [[1, 2], [3, 4]]),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ [[1, 2], {'a': none}, 's', true] | join('; ') }}", '[1, 2]; {"a": null}; s; True'),
        ("{{ [{'t': 'a'}, {'t': 'b'}] | join(', ', attribute='t') }}", "a, b"),
    ],
)
def test_filter(template: str, expected: Any) -> None:
    assert render_value(template, CONTEXT, path="p") == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ 'not json' | fromjson }}",
            "fromjson: invalid JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        ("{{ 3 | fromjson }}", "fromjson expects a string, not int"),
        ("{{ '***' | b64decode }}", "b64decode: invalid base64 input"),
        ("{{ '/w==' | b64decode }}", "b64decode: decoded bytes are not UTF-8 text"),
        ("{{ data | pprint }}", "syntax error at line 1: No filter named 'pprint'."),
    ],
)
def test_filter_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_value(template, CONTEXT, path="p")
    assert caught.value.message == message
