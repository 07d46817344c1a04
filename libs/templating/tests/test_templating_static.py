"""Static checks used by the definitions validator."""

from __future__ import annotations

import pytest

from autom.templating import (
    TemplateError,
    is_template,
    iter_templates,
    parse_condition,
    parse_template,
    referenced_names,
    referenced_step_ids,
)


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "https://x/{{ inputs.repo }}",
        "{% for x in steps.fetch.output.items %}{{ x.title }}{% endfor %}",
        "{{ steps.fetch.output.json | tojson }}",
        "{{ 'x' | b64encode | b64decode | fromjson }}",
    ],
)
def test_parse_template_accepts_valid_templates(text: str) -> None:
    parse_template(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{{ inputs.repo",
            "syntax error at line 1: unexpected end of template,"
            " expected 'end of print statement'.",
        ),
        (
            "a\nb\n{% for x in y %}",
            "syntax error at line 3: Unexpected end of template. Jinja was looking for the"
            " following tags: 'endfor' or 'else'. The innermost block that needs to be"
            " closed is 'for'.",
        ),
        ("{{ x | nosuch }}", "syntax error at line 1: No filter named 'nosuch'."),
        ("{{ x is nosuch }}", "syntax error at line 1: No test named 'nosuch'."),
        ("{% include 'other' %}", "syntax error at line 1: {% include %} is not supported"),
    ],
)
def test_parse_template_reports_the_syntax_error_and_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(text, path="plan[0].params.url")
    assert caught.value.path == "plan[0].params.url"
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no template", set()),
        ("{{ steps.fetch.output.status }}", {"fetch"}),
        ("{{ steps['fetch'].output }} {{ steps[\"other\"] }}", {"fetch", "other"}),
        ("{% if steps.a.status == 'ok' %}{{ steps.b.output | tojson }}{% endif %}", {"a", "b"}),
        ("{% for i in steps.c.output.items %}{{ i }}{% endfor %}", {"c"}),
        ("{{ steps[inputs.name] }} {{ inputs.steps.x }} {{ step.y }}", set()),
        ("{{ (steps.a or steps.b).output }}", {"a", "b"}),
    ],
)
def test_referenced_step_ids_walks_the_ast(text: str, expected: set[str]) -> None:
    assert referenced_step_ids(text) == expected


def test_referenced_step_ids_of_a_bare_condition() -> None:
    assert referenced_step_ids("steps.fetch.output.status == 200", condition=True) == {"fetch"}
    assert referenced_step_ids("steps.fetch.output.status == 200") == set()
    assert referenced_step_ids("{{ steps.x }}", condition=True) == {"x"}


def test_referenced_step_ids_raises_on_syntax_error() -> None:
    with pytest.raises(TemplateError) as caught:
        referenced_step_ids("steps.a ==", condition=True, path="plan[3].when")
    assert caught.value.path == "plan[3].when"


def test_iter_templates_yields_paths_of_template_strings() -> None:
    params = {
        "method": "POST",
        "url": "{{ secrets.WEBHOOK_URL }}",
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}", "Accept": "json"},
        "json": {"items": ["a", "{% if x %}y{% endif %}", {"deep": "{{ z }}"}], "n": 3},
        "{{ key }}": "plain",
    }
    assert list(iter_templates(params, "plan[2].params")) == [
        ("plan[2].params.url", "{{ secrets.WEBHOOK_URL }}"),
        ("plan[2].params.headers.Authorization", "Bearer {{ secrets.TOKEN }}"),
        ("plan[2].params.json.items[1]", "{% if x %}y{% endif %}"),
        ("plan[2].params.json.items[2].deep", "{{ z }}"),
    ]
    assert list(iter_templates("{{ a }}")) == [("", "{{ a }}")]
    assert list(iter_templates(["{{ a }}"])) == [("[0]", "{{ a }}")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("{% if %}", True), ("{ x }", False), ("{# c #}", False), ("", False)],
)
def test_is_template(text: str, expected: bool) -> None:
    assert is_template(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "{{ inputs.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs | attr('__globals__') }}",
        "{% set f = lipsum.__globals__ %}{{ f }}",
        "{{ '{0.__class__}'.format(inputs) }}",
        "{{ inputs.keys.__self__.pop('x') }}",
        "{{ x.gi_frame }}",
    ],
)
def test_templates_the_sandbox_would_refuse_are_refused_statically(text: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse_template(text, path="plan[0].params.message")
    assert err.value.path == "plan[0].params.message"
    assert "unsafe template" in err.value.message


def test_a_bare_condition_reading_an_internal_attribute_is_refused() -> None:
    with pytest.raises(TemplateError):
        parse_condition("inputs.__class__", path="plan[0].when")
    parse_condition("inputs.x == 1", path="plan[0].when")


@pytest.mark.parametrize(
    "text",
    [
        "{{ steps.fetch.output.json._links.next }}",  # HAL keys start with one underscore
        "{{ steps.q.output.json.data['__typename'] }}",  # a JSON key spelled like a dunder
        "{{ inputs.items() | list }}",
        "{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}",
    ],
)
def test_data_keys_and_allowed_methods_stay_valid(text: str) -> None:
    parse_template(text)


def test_referenced_names_lists_keys_read_from_a_variable() -> None:
    text = "{{ secrets.A }}-{{ secrets['B'] }}-{{ inputs.host }}"
    assert referenced_names(text, "secrets") == {"A", "B"}
    assert referenced_names(text, "inputs") == {"host"}
    assert referenced_names("{{ inputs | tojson }}", "inputs") == {"*"}
    assert referenced_names("plain", "inputs") == set()
