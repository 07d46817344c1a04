"""Rendering step params and `when` conditions, and the static checks the validator runs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import Template, nodes
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser

from autom.templating._checks import refused_attribute, refused_method
from autom.templating._paths import child_path, is_template
from autom.templating._run import CURRENT_RUN, Run
from autom.templating._sandbox import SandboxEnvironment
from autom.templating._values import to_native, truthy
from autom.templating.errors import TemplateError
from autom.templating.limits import Limits
from autom.templating.redaction import redact

_MAX_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A compiled string: `native` ones are one `{{ expr }}` assigning `result`."""

    native: bool
    template: Template


def _describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.TemplateError):
        return exc.message or type(exc).__name__
    if isinstance(exc, RecursionError):
        return "template recursion is too deep"
    if isinstance(exc, MemoryError):
        return "template ran out of memory"
    return f"{type(exc).__name__}: {exc}"


def _single_expression(template: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is one `{{ expr }}` and blank text, else None."""
    if len(template.body) != 1 or not isinstance(template.body[0], nodes.Output):
        return None
    parts = list(template.body[0].nodes)
    while parts and isinstance(parts[0], nodes.TemplateData) and not parts[0].data.strip():
        parts.pop(0)
    while parts and isinstance(parts[-1], nodes.TemplateData) and not parts[-1].data.strip():
        parts.pop()
    if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
        return parts[0]
    return None


def _refusal(tree: nodes.Node) -> str | None:
    """What the sandbox would refuse in any render of `tree`, found without rendering it."""
    kinds = (nodes.Getattr, nodes.Call, nodes.Filter)
    # find_all yields descendants only: a bare `when` expression may itself be the access.
    for node in [tree, *tree.find_all(kinds)]:
        if isinstance(node, nodes.Getattr):
            why: str | None = refused_attribute(node.attr)
        elif isinstance(node, nodes.Call):
            target = node.node
            why = refused_method(target.attr) if isinstance(target, nodes.Getattr) else None
        elif isinstance(node, nodes.Filter):
            arg = node.args[0] if node.name == "attr" and node.args else None
            name = arg.value if isinstance(arg, nodes.Const) else None
            why = refused_attribute(name) if isinstance(name, str) else None
        else:
            continue
        if why is not None:
            return f"unsafe template at line {node.lineno}: {why}"
    return None


def _names(tree: nodes.Node, root: str) -> set[str]:
    """Keys read from the context variable `root` as `root.key` or `root['key']`."""

    def is_root(node: nodes.Node) -> bool:
        return isinstance(node, nodes.Name) and node.name == root

    found = {node.attr for node in tree.find_all(nodes.Getattr) if is_root(node.node)}
    for item in tree.find_all(nodes.Getitem):
        arg = item.arg
        if is_root(item.node) and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            found.add(arg.value)
    if any(is_root(n) for n in tree.find_all(nodes.Name)) and not found:
        # The whole variable (e.g. `inputs | tojson`) or a computed key.
        found.add("*")
    return found


def _step_ids(tree: nodes.Node) -> set[str]:
    return _names(tree, "steps") - {"*"}


class TemplateEngine:
    """Sandboxed Jinja rendering with caps; thread-safe, caches compiled templates."""

    def __init__(self, limits: Limits | None = None, *, cache_size: int = 1024) -> None:
        self._limits = limits or Limits()
        self._env = SandboxEnvironment(self._limits)
        self._compile: Callable[[str], _Compiled] = functools.lru_cache(cache_size)(
            self._compile_template
        )
        self._compile_condition: Callable[[str], TemplateExpression] = functools.lru_cache(
            cache_size
        )(self._compile_expression)

    @property
    def limits(self) -> Limits:
        """The caps every render of this engine runs under."""
        return self._limits

    # -- Rendering

    def render_value(self, value: Any, context: Mapping[str, Any], *, path: str) -> Any:
        """Render every template string inside a JSON-like value (one pass, keys untouched).

        A string that is exactly one `{{ expr }}` becomes the expression's native value;
        any other template string renders to a string; other values pass through.
        """
        with self._run(context) as run:
            return self._render(value, context, path, run)

    def evaluate_condition(self, condition: str, context: Mapping[str, Any], *, path: str) -> bool:
        """Truth of a `when`: a bare expression or a template; see `FALSY_STRINGS`."""
        with self._run(context) as run:
            if is_template(condition):
                value = self._render_template(condition, context, path, run)
            else:
                try:
                    value = self._compile_condition(condition)(dict(context))
                except Exception as exc:
                    raise self._error(path, exc, context) from None
            try:
                return truthy(value)
            except Exception as exc:
                raise self._error(path, exc, context) from None

    def _render(self, value: Any, context: Mapping[str, Any], path: str, run: Run) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            return self._render_template(value, context, path, run)
        if isinstance(value, dict):
            return {
                key: self._render(child, context, child_path(path, key), run)
                for key, child in value.items()
            }
        if isinstance(value, list | tuple):
            return [
                self._render(child, context, child_path(path, index), run)
                for index, child in enumerate(value)
            ]
        return value

    def _render_template(self, source: str, context: Mapping[str, Any], path: str, run: Run) -> Any:
        try:
            compiled = self._compile(source)
            jinja_context = compiled.template.new_context(dict(context))
            chunks = compiled.template.root_render_func(jinja_context)
            if compiled.native:
                for _ in chunks:
                    pass
                value, size = to_native(jinja_context.vars["result"], run.output_left)
                run.add_output(size)
                return value
            parts: list[str] = []
            for chunk in chunks:
                run.add_output(len(chunk))
                run.check_time()
                parts.append(chunk)
            return "".join(parts)
        except Exception as exc:
            raise self._error(path, exc, context) from None

    @contextmanager
    def _run(self, context: Mapping[str, Any]) -> Iterator[Run]:
        run = Run(self._limits, time.monotonic() + self._limits.timeout)
        for key, value in context.items():
            if isinstance(value, dict | list):
                run.names.setdefault(id(value), key)
        token = CURRENT_RUN.set(run)
        try:
            yield run
        finally:
            CURRENT_RUN.reset(token)

    def _error(self, path: str, exc: Exception, context: Mapping[str, Any]) -> TemplateError:
        message = _describe(exc)
        secrets = context.get("secrets")
        if isinstance(secrets, Mapping):
            message = redact(message, secrets)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        return TemplateError(path, message)

    # -- Compiling

    def _compile_template(self, source: str) -> _Compiled:
        tree = self._env.parse(source)
        expr = _single_expression(tree)
        if expr is None:
            return _Compiled(native=False, template=self._env.from_string(tree))
        assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
        wrapper = nodes.Template([assign], lineno=1)
        wrapper.set_environment(self._env)
        return _Compiled(native=True, template=self._env.from_string(wrapper))

    def _compile_expression(self, source: str) -> TemplateExpression:
        return self._env.compile_expression(source, undefined_to_none=False)

    def _parse_expression(self, source: str) -> nodes.Expr:
        parser = Parser(self._env, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise jinja2.TemplateSyntaxError(
                "chunk after expression", parser.stream.current.lineno, None, None
            )
        return expr

    # -- Static checks

    def parse_template(self, text: str, *, path: str = "") -> None:
        """Compile a template without rendering it; raises `TemplateError` if it is invalid
        or uses what the sandbox refuses in every render (internal attributes, refused
        methods)."""
        try:
            self._compile(text)
            why = _refusal(self._env.parse(text))
        except Exception as exc:
            raise TemplateError(path, _describe(exc)) from None
        if why is not None:
            raise TemplateError(path, why)

    def parse_condition(self, condition: str, *, path: str = "") -> None:
        """Compile a `when` (bare expression or template) without evaluating it; refused
        like `parse_template`."""
        try:
            if is_template(condition):
                self._compile(condition)
                tree: nodes.Node = self._env.parse(condition)
            else:
                self._compile_condition(condition)
                tree = self._parse_expression(condition)
        except Exception as exc:
            raise TemplateError(path, _describe(exc)) from None
        why = _refusal(tree)
        if why is not None:
            raise TemplateError(path, why)

    def referenced_names(self, text: str, root: str) -> set[str]:
        """Keys a template reads from context variable `root` (`inputs`, `secrets`, ...);
        `*` when it reads the variable whole or by a computed key."""
        try:
            return _names(self._env.parse(text), root)
        except Exception as exc:
            raise TemplateError("", _describe(exc)) from None

    def referenced_step_ids(
        self, text: str, *, condition: bool = False, path: str = ""
    ) -> set[str]:
        """Step ids a template (or, with `condition`, a bare `when` expression) names as
        `steps.<id>` or `steps['<id>']`."""
        try:
            if condition and not is_template(text):
                return _step_ids(self._parse_expression(text))
            return _step_ids(self._env.parse(text))
        except Exception as exc:
            raise TemplateError(path, _describe(exc)) from None


def referenced_names(text: str, root: str) -> set[str]:
    """`TemplateEngine.referenced_names` on the default engine."""
    return default_engine().referenced_names(text, root)


@functools.cache
def default_engine() -> TemplateEngine:
    """The shared engine with default `Limits`, built on first use."""
    return TemplateEngine()


def render_value(value: Any, context: Mapping[str, Any], *, path: str) -> Any:
    """`TemplateEngine.render_value` on the default engine."""
    return default_engine().render_value(value, context, path=path)


def evaluate_condition(condition: str, context: Mapping[str, Any], *, path: str) -> bool:
    """`TemplateEngine.evaluate_condition` on the default engine."""
    return default_engine().evaluate_condition(condition, context, path=path)


def parse_template(text: str, *, path: str = "") -> None:
    """`TemplateEngine.parse_template` on the default engine."""
    default_engine().parse_template(text, path=path)


def parse_condition(condition: str, *, path: str = "") -> None:
    """`TemplateEngine.parse_condition` on the default engine."""
    default_engine().parse_condition(condition, path=path)


def referenced_step_ids(text: str, *, condition: bool = False, path: str = "") -> set[str]:
    """`TemplateEngine.referenced_step_ids` on the default engine."""
    return default_engine().referenced_step_ids(text, condition=condition, path=path)
