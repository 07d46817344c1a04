"""Sandbox escapes and resource exhaustion: each fails fast with a TemplateError and no leak."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from autom.templating import Limits, TemplateEngine, TemplateError, render_value

CONTEXT: dict[str, Any] = {
    "inputs": {"text": "x" * 1000},
    "steps": {"fetch": {"output": {"status": 200}}},
    "secrets": {"TOKEN": "s3cr3t-token"},
}

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__bases__[0] }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ 'a'.format }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__.__base__}'.format('') }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ ''|attr('__class__') }}",
    "{{ [1]|map(attribute='__class__')|list }}",
    "{{ ([1, 2]|sort(attribute='__class__')) }}",
    "{{ dict.update }}",
    "{{ dict.__class__ }}",
    "{{ range }}",
    "{{ range|string }}",
    "{{ range|upper }}",
    "{{ '%s' % range }}",
    "{{ '{}'.format(cycler) }}",
    "{{ self }}",
    "{{ cycler(1, 2) }}",
    "{% for x in [1] %}{{ loop }}{% endfor %}",
    "{{ 'a'.translate({97: 'b'}) }}",
    "{{ 'a'.encode() }}",
    "{{ (1).to_bytes(4, 'big') }}",
    "{{ {'a': 1}.pop('a') }}",
    "{{ [1].append(2) }}",
    "{{ steps.update({'x': 1}) }}",
    "{% set x = steps.__setitem__('x', 1) %}",
    "{% include 'secrets.txt' %}",
    "{% import 'os' as os %}",
    "{% extends 'base' %}",
]

EXHAUSTION = [
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ range(10**100) }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% for i in range(3) recursive %}{{ loop(range(3)) }}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 10**8 }}",
    "{{ [1, 2, 3] * 100000000 }}",
    "{{ [inputs.text] * 100000 }}",
    "{{ 'x' * (2**62) }}",
    "{{ 2 ** 1000000 }}",
    "{% set n = namespace(x=3) %}{% for i in range(64) %}{% set n.x = n.x * n.x %}{% endfor %}",
    "{% set n = namespace(s='xx') %}{% for i in range(64) %}{% set n.s = n.s ~ n.s %}{% endfor %}",
    "{% set n = namespace(s='xx') %}{% for i in range(64) %}{% set n.s = n.s + n.s %}{% endfor %}",
    "{% set n = namespace(l=[1]) %}{% for i in range(64) %}{% set n.l = n.l + n.l %}{% endfor %}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.rjust(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 10**9) }}",
    "{{ '%1000000000d' % 1 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ '%1000000000s'|format('x') }}",
    "{{ (inputs.text * 1000).replace('', inputs.text) }}",
    "{{ (inputs.text * 1000)|replace('x', inputs.text) }}",
    "{{ '-'.join([inputs.text * 1000] * 1000) }}",
    "{{ [inputs.text * 1000, 'y']|join(inputs.text * 8000) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ (inputs.text * 1000)|wordwrap(1, wrapstring=inputs.text) }}",
    "{{ ('&' * 1000000)|forceescape|forceescape|forceescape|forceescape }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{{ [1]|slice(10**9)|list }}",
    "{{ ([[1]] * 100000)|sum(start=[]) }}",
    "{{ 5|round(-10**9) }}",
    "{{ 5|round(-10**9, 'floor') }}",
    "{{ ('[' * 100000)|fromjson }}",
    "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "{% set x %}{% for i in range(10000) %}{{ inputs.text }}{% endfor %}{% endset %}{{ x|length }}",
    "{% for i in range(10000) %}{{ inputs.text }}{% endfor %}",
    "{{ ([inputs.text] * 8000)|tojson }}",
    "{{ ([inputs.text] * 8000)|string }}",
    "{{ 'x' ~ [inputs.text] * 8000 }}",
    "{{ [inputs.text] * 8000 }}",
    "{{ {'a': [1]}|tojson(indent=10**9) }}",
    "{{ lipsum(n=10**6) }}",
]

# Signs of a leaked Python object (repr, address, module path) or of a secret value.
LEAK_MARKERS = ("0x", "<", "built-in", "jinja2.", "autom.", "s3cr3t-token")


def _assert_fails_cleanly(template: str) -> TemplateError:
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render_value(template, CONTEXT, path="plan[0].params.x")
    assert time.monotonic() - started < 3.0
    error = caught.value
    assert error.path == "plan[0].params.x"
    assert error.message
    for marker in LEAK_MARKERS:
        assert marker not in error.message
    return error


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escape_attempt_fails_without_leaking(template: str) -> None:
    _assert_fails_cleanly(template)


@pytest.mark.parametrize("template", EXHAUSTION)
def test_resource_exhaustion_attempt_fails_fast(template: str) -> None:
    _assert_fails_cleanly(template)


def test_escape_attempts_do_not_mutate_the_context() -> None:
    context = {"steps": {"a": {"output": 1}}, "inputs": {"x": [1]}}
    for template in (
        "{{ steps.update({'b': 2}) }}",
        "{{ inputs.x.append(2) }}",
        "{{ dict.update(steps, {'b': 2}) }}",
        "{{ inputs.setdefault('y', 1) }}",
        "{% set ns = namespace() %}{% set steps.b = 2 %}",
    ):
        with pytest.raises(TemplateError):
            render_value(template, context, path="p")
    assert context == {"steps": {"a": {"output": 1}}, "inputs": {"x": [1]}}


class _Holder:
    _private = "hidden"
    public = "shown"


def test_underscore_attributes_are_unreachable_even_on_data() -> None:
    assert render_value("{{ inputs.public }}", {"inputs": _Holder()}, path="p") == "shown"
    with pytest.raises(TemplateError, match="'_private' of '_Holder' object is unsafe"):
        render_value("{{ inputs._private }}", {"inputs": _Holder()}, path="p")
    # A JSON key that starts with an underscore is data, not an attribute.
    assert render_value("{{ d._id }}", {"d": {"_id": 7}}, path="p") == 7


def test_str_format_with_plain_fields_still_works() -> None:
    assert render_value("{{ '{}-{:>4}'.format('a', 7) }}", {}, path="p") == "a-   7"
    assert render_value("{{ '%s=%05d'|format('n', 42) }}", {}, path="p") == "n=00042"
    assert render_value("{{ '%(a)s' % {'a': 1} }}", {}, path="p") == "1"


def test_step_cap_is_configurable() -> None:
    # Each iteration is a step, and so is each call (here `range` and the loop guard).
    engine = TemplateEngine(Limits(max_steps=100))
    assert engine.render_value("{% for i in range(98) %}{% endfor %}ok", {}, path="p") == "ok"
    with pytest.raises(TemplateError, match="exceeded 100 steps"):
        engine.render_value("{% for i in range(99) %}{% endfor %}", {}, path="p")


def test_range_cap_is_configurable() -> None:
    engine = TemplateEngine(Limits(max_range=5))
    assert engine.render_value("{{ range(5) | list }}", {}, path="p") == [0, 1, 2, 3, 4]
    with pytest.raises(TemplateError, match=r"range\(\) is limited to 5 items"):
        engine.render_value("{{ range(6) }}", {}, path="p")


def test_timeout_stops_a_long_render() -> None:
    engine = TemplateEngine(Limits(timeout=0.05, max_steps=10**9, max_range=10**6))
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"took longer than 0.05s"):
        engine.render_value(
            "{% for i in range(10**6) %}{% for j in range(10**6) %}{% endfor %}{% endfor %}",
            {},
            path="p",
        )
    assert time.monotonic() - started < 1.0


def test_output_cap_applies_to_text_and_native_values() -> None:
    engine = TemplateEngine(Limits(max_output_size=10, max_work_size=100))
    assert engine.render_value("{{ 'x' * 3 }}-{{ 'y' * 6 }}", {}, path="p") == "xxx-yyyyyy"
    with pytest.raises(TemplateError, match="exceeds the size limit of 10 characters"):
        engine.render_value("{{ 'x' * 5 }}-{{ 'y' * 6 }}", {}, path="p")
    with pytest.raises(TemplateError, match="exceeds the size limit of 10 characters"):
        engine.render_value("{{ [1, 2, 3, 4, 5] }}", {}, path="p")
    with pytest.raises(TemplateError, match="size limit of 100 characters"):
        engine.render_value("{{ ('x' * 101) | length }}", {}, path="p")


def test_output_cap_is_shared_by_all_leaves_of_one_value() -> None:
    engine = TemplateEngine(Limits(max_output_size=10, max_work_size=100))
    with pytest.raises(TemplateError) as caught:
        engine.render_value({"a": "{{ 'x' * 6 }}", "b": "{{ 'y' * 6 }}"}, {}, path="params")
    assert caught.value.path == "params.b"


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_steps must be positive"):
        Limits(max_steps=0)
    with pytest.raises(ValueError, match="max_work_size must be at least max_output_size"):
        Limits(max_output_size=10, max_work_size=5)


def test_concurrent_renders_keep_separate_budgets() -> None:
    engine = TemplateEngine(Limits(max_steps=1000))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                engine.render_value("{% for i in range(900) %}{% endfor %}ok", {}, path="p")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
