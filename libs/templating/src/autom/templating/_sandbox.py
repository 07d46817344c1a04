"""The hardened Jinja environment: sandbox, step budget, deadline and size checks.

Every template is compiled with two extra hooks: each `{% for %}` iterates through
`environment.guard_iter` (one step per item) and each `~` calls
`environment.concat_values` (JSON text for containers, size-checked). Calls, the
`+ * ** %` operators, filters, buffer joins and output go through the overrides below.
Per-render state lives in a context variable so one environment serves concurrent renders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from autom.templating._checks import (
    check_add,
    check_format_string,
    check_length,
    check_method_call,
    check_multiply,
    check_percent_format,
    check_power,
)
from autom.templating._filters import build_filters, build_globals
from autom.templating._paths import child_path
from autom.templating._run import CURRENT_RUN, check_time
from autom.templating._values import check_size, measure, to_text
from autom.templating.limits import Limits


def _hook(name: str, args: list[Any], lineno: int) -> nodes.Call:
    """A call of `environment.<name>(*args)`; it goes through `call`, so it counts a step."""
    return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)


class _Harden(NodeTransformer):
    def _refuse(self, node: nodes.Node, tag: str) -> nodes.Node:
        raise TemplateSyntaxError(f"{{% {tag} %}} is not supported", node.lineno)

    def visit_Extends(self, node: nodes.Extends) -> nodes.Node:
        return self._refuse(node, "extends")

    def visit_Include(self, node: nodes.Include) -> nodes.Node:
        return self._refuse(node, "include")

    def visit_Import(self, node: nodes.Import) -> nodes.Node:
        return self._refuse(node, "import")

    def visit_FromImport(self, node: nodes.FromImport) -> nodes.Node:
        return self._refuse(node, "from ... import")

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _hook("guard_iter", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _hook("concat_values", node.nodes, node.lineno)


class _CodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(_Harden().visit(node), frame)


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """Immutable sandbox with StrictUndefined, no autoescape and Autom's caps."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, limits: Limits) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            finalize=self._finalize,
            optimized=False,  # no compile-time folding: filters run under the caps
            auto_reload=False,
            cache_size=0,
        )
        self.limits = limits
        self.globals = build_globals(limits.max_range)
        self.filters = build_filters(limits)

    # Attribute access: for JSON objects `.key` prefers the key over a dict method, and
    # missing keys name the path they were looked up on.

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict):
            if attribute in obj:
                return self._child(obj, attribute, obj[attribute])
            if not hasattr(obj, attribute):
                return self._missing(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, dict):
            try:
                value = obj[argument]
            except (KeyError, TypeError):
                if not (isinstance(argument, str) and hasattr(obj, argument)):
                    return self._missing(obj, argument)
            else:
                return self._child(obj, argument, value)
        elif isinstance(obj, list | tuple) and type(argument) is int:
            try:
                return self._child(obj, argument, obj[argument])
            except IndexError:
                return self._missing(obj, argument)
        return super().getitem(obj, argument)

    def _child(self, obj: Any, key: Any, value: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is not None and isinstance(value, dict | list):
            parent = run.names.get(id(obj))
            if parent is not None:
                run.names.setdefault(id(value), child_path(parent, key))
        return value

    def _missing(self, obj: Any, key: Any) -> Undefined:
        run = CURRENT_RUN.get()
        name = run.names.get(id(obj)) if run is not None else None
        if name is None:
            return self.undefined(obj=obj, name=key)
        kind = "attribute" if isinstance(key, str) else "element"
        return self.undefined(f"{name!r} has no {kind} {key!r}", obj=obj, name=key)

    # Calls, operators and format strings.

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is not None:
            run.tick()
        args = check_method_call(obj, args, kwargs, self.limits.max_work_size)
        result = super().call(context, obj, *args, **kwargs)
        check_size(result, self.limits.max_work_size, "call result")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        work = self.limits.max_work_size
        if operator == "*":
            check_multiply(left, right, work)
        elif operator == "**":
            check_power(left, right)
        elif operator == "+":
            check_add(left, right, work)
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left, work)
            measure(right, work, "'%' formatting")
        result = super().call_binop(context, operator, left, right)
        check_size(result, work, f"result of {operator!r}")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        work = self.limits.max_work_size
        check_format_string(value.__self__, work)

        @functools.wraps(wrapper)
        def checked(*args: Any, **kwargs: Any) -> str:
            measure((args, kwargs), work, "format()")
            result = wrapper(*args, **kwargs)
            check_size(result, work, "format() result")
            return result

        return checked

    # Hooks used by the generated code.

    def guard_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Yield from `iterable`, one step per item."""
        run = CURRENT_RUN.get()
        for item in iterable:
            if run is not None:
                run.tick()
            yield item

    def concat_values(self, *values: Any) -> str:
        """The `~` operator: text of each operand, joined, size-checked."""
        work = self.limits.max_work_size
        parts = [to_text(value, work) for value in values]
        check_length(sum(map(len, parts)), work, "'~' result")
        return "".join(parts)

    def concat(self, pieces: Iterable[str]) -> str:
        """Join a buffer (macro body, `{% set %}` block, filter block), size-checked."""
        parts = pieces if isinstance(pieces, list) else list(pieces)
        check_length(sum(map(len, parts)), self.limits.max_work_size, "template block")
        check_time()
        return "".join(parts)

    def _finalize(self, value: Any) -> str:
        check_time()
        return to_text(value, self.limits.max_work_size)
