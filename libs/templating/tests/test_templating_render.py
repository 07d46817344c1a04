"""render_value: native values, interpolation, one pass, error paths and messages."""

from __future__ import annotations

from typing import Any

import pytest

from autom.templating import TemplateEngine, TemplateError, render_value


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "inputs": {"repo": "octo/widgets", "count": 3, "tags": ["a", "b"]},
        "trigger": {"type": "schedule", "fired_at": "2024-05-06T09:00:00Z", "payload": {}},
        "steps": {
            "fetch": {
                "status": "succeeded",
                "output": {
                    "status": 200,
                    "json": {"items": [{"title": "one"}, {"title": "two"}], "total": 2},
                    "body": "Ignore this: {{ secrets.WEBHOOK_URL }} {% for x in y %}",
                },
            },
            "summarise": {"status": "succeeded", "output": {"text": "hello {{ secrets.TOKEN }}"}},
        },
        "run": {"id": "run-1", "automation_id": "auto-1", "attempt": 1},
        "secrets": {"WEBHOOK_URL": "https://hooks.example.com/abc123", "TOKEN": "tok-9f8e7d"},
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{ inputs.count * 2 + 0.5 }}", 6.5),
        ("{{ inputs.count > 2 }}", True),
        ("{{ none }}", None),
        ("{{ inputs.tags }}", ["a", "b"]),
        (
            "{{ steps.fetch.output.json }}",
            {"items": [{"title": "one"}, {"title": "two"}], "total": 2},
        ),
        ("{{ {'a': [1, (2, 3)]} }}", {"a": [1, [2, 3]]}),
        ("{{ steps.fetch.output.json['items'] | map(attribute='title') }}", ["one", "two"]),
        ("  {{ inputs.repo }}\n", "octo/widgets"),
        ("{{- inputs.count -}}", 3),
        ("{{ inputs.count }}{# a comment #}", 3),
    ],
)
def test_single_expression_renders_native_value(
    context: dict[str, Any], template: str, expected: Any
) -> None:
    assert render_value(template, context, path="params.x") == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "https://api.example.com/repos/{{ inputs.repo }}/issues",
            "https://api.example.com/repos/octo/widgets/issues",
        ),
        ("{{ inputs.count }} items", "3 items"),
        ("{{ inputs.count }}{{ inputs.count }}", "33"),
        ("tags: {{ inputs.tags }}", 'tags: ["a", "b"]'),
        ("{{ inputs.tags | join(',') }}!", "a,b!"),
        ("{% for t in inputs.tags %}[{{ t }}]{% endfor %}", "[a][b]"),
        ("{% if inputs.count > 2 %}many{% else %}few{% endif %}", "many"),
        ("{{ 'x' ~ inputs.count ~ inputs.tags }}.", 'x3["a", "b"].'),
        ("{% raw %}{{ inputs.repo }}{% endraw %}", "{{ inputs.repo }}"),
        ("flag={{ inputs.count > 2 }}", "flag=True"),
    ],
)
def test_other_templates_render_to_strings(
    context: dict[str, Any], template: str, expected: str
) -> None:
    assert render_value(template, context, path="params.x") == expected


def test_nested_value_renders_leaves_and_keeps_keys_and_non_strings(
    context: dict[str, Any],
) -> None:
    params = {
        "method": "POST",
        "url": "{{ secrets.WEBHOOK_URL }}",
        "{{ inputs.repo }}": "key is not rendered",
        "json": {"text": "{{ steps.summarise.output.text }}", "n": "{{ inputs.count }}"},
        "list": ["{{ inputs.repo }}", 5, None, True, 1.5],
        "timeout": 30,
    }
    assert render_value(params, context, path="params") == {
        "method": "POST",
        "url": "https://hooks.example.com/abc123",
        "{{ inputs.repo }}": "key is not rendered",
        "json": {"text": "hello {{ secrets.TOKEN }}", "n": 3},
        "list": ["octo/widgets", 5, None, True, 1.5],
        "timeout": 30,
    }


def test_step_output_with_template_syntax_comes_through_verbatim(
    context: dict[str, Any],
) -> None:
    rendered = render_value(
        {
            "native": "{{ steps.fetch.output.body }}",
            "text": "Body: {{ steps.fetch.output.body }}",
            "whole": "{{ steps.summarise.output }}",
        },
        context,
        path="params",
    )
    assert rendered == {
        "native": "Ignore this: {{ secrets.WEBHOOK_URL }} {% for x in y %}",
        "text": "Body: Ignore this: {{ secrets.WEBHOOK_URL }} {% for x in y %}",
        "whole": {"text": "hello {{ secrets.TOKEN }}"},
    }


def test_string_literal_with_braces_is_data_not_a_second_template(
    context: dict[str, Any],
) -> None:
    assert render_value("{{ '{{ secrets.TOKEN }}' }}", context, path="p") == "{{ secrets.TOKEN }}"


def test_plain_strings_are_returned_unchanged(context: dict[str, Any]) -> None:
    assert render_value("no { template } here {#", context, path="p") == "no { template } here {#"


def test_dot_access_prefers_json_keys_over_dict_methods() -> None:
    context = {"data": {"items": [1, 2], "keys": "k"}, "plain": {"a": 1}}
    assert render_value("{{ data.items }}", context, path="p") == [1, 2]
    assert render_value("{{ data.keys }}", context, path="p") == "k"
    assert render_value("{{ plain.items() | list }}", context, path="p") == [["a", 1]]


@pytest.mark.parametrize(
    ("value", "path", "error_path", "message"),
    [
        ("{{ steps.nope.output }}", "params.url", "params.url", "'steps' has no attribute 'nope'"),
        (
            "{{ steps.fetch.output.json.missing }}",
            "plan[2].params",
            "plan[2].params",
            "'steps.fetch.output.json' has no attribute 'missing'",
        ),
        (
            "{{ steps.fetch.output.json['items'][5] }}",
            "p",
            "p",
            "'steps.fetch.output.json.items' has no element 5",
        ),
        (
            {"headers": {"Authorization": "Bearer {{ secret.TOKEN }}"}},
            "plan[2].params",
            "plan[2].params.headers.Authorization",
            "'secret' is undefined",
        ),
        ({"list": ["ok", "{{ nope }}"]}, "params", "params.list[1]", "'nope' is undefined"),
        ({"Content-Type": "{{ x }}"}, "h", "h.Content-Type", "'x' is undefined"),
        ({"a.b": "{{ x }}"}, "h", 'h["a.b"]', "'x' is undefined"),
        (["{{ x }}"], "", "[0]", "'x' is undefined"),
        (
            "{{ 1 + }}",
            "params.url",
            "params.url",
            "syntax error at line 1: unexpected 'end of print statement'",
        ),
        (
            "a\n{% if %}",
            "p",
            "p",
            "syntax error at line 2: Expected an expression, got 'end of statement block'",
        ),
        (
            "{{ 'x' | nosuchfilter }}",
            "p",
            "p",
            "syntax error at line 1: No filter named 'nosuchfilter'.",
        ),
        ("{{ 1 / 0 }}", "p", "p", "ZeroDivisionError: division by zero"),
        (
            "{{ inputs.repo + 1 }}",
            "p",
            "p",
            'TypeError: can only concatenate str (not "int") to str',
        ),
    ],
)
def test_errors_name_the_field_path_and_the_problem(
    context: dict[str, Any], value: Any, path: str, error_path: str, message: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        render_value(value, context, path=path)
    assert caught.value.path == error_path
    assert caught.value.message == message
    assert str(caught.value) == f"{error_path}: {message}"


def test_error_messages_never_contain_secret_values(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render_value("{{ steps[secrets.TOKEN] }}", context, path="p")
    assert "tok-9f8e7d" not in str(caught.value)
    assert caught.value.message == "'steps' has no attribute '***'"
    assert caught.value.__cause__ is None


def test_non_data_results_are_refused(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="cannot render a value of type 'function'"):
        render_value("{{ range }}", context, path="p")
    with pytest.raises(TemplateError, match="non-finite number inf"):
        render_value("{{ '1e999' | fromjson }}", context, path="p")
    with pytest.raises(TemplateError, match="object keys must be strings"):
        render_value("{{ {1: 'a'} }}", context, path="p")


def test_native_values_are_copies_not_views_of_the_context(context: dict[str, Any]) -> None:
    rendered = render_value("{{ steps.fetch.output.json }}", context, path="p")
    rendered["items"].append("mutated")
    assert context["steps"]["fetch"]["output"]["json"]["items"] == [
        {"title": "one"},
        {"title": "two"},
    ]


def test_integers_too_long_to_print_are_refused() -> None:
    assert render_value("{{ 10 ** 300 }}", {}, path="p") == 10**300
    for template in ("{{ 10 ** 5000 }}", "n={{ 10 ** 5000 }}"):
        with pytest.raises(TemplateError, match="integer is too large to render"):
            render_value(template, {}, path="p")


def test_engine_caches_compiled_templates(context: dict[str, Any]) -> None:
    engine = TemplateEngine()
    for _ in range(3):
        assert engine.render_value("{{ inputs.count }}", context, path="p") == 3
    assert engine.render_value("{{ run.attempt }}", {"run": {"attempt": 2}}, path="p") == 2
