"""Jinja's filters with size pre-checks, Autom's own filters, and the template globals."""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
from collections.abc import Callable
from typing import Any

from jinja2 import pass_environment, pass_eval_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.filters import (
    FILTERS,
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_round,
    do_wordwrap,
    make_attrgetter,
    sync_do_slice,
    sync_do_sum,
)
from jinja2.nodes import EvalContext
from jinja2.utils import Cycler, Joiner, Namespace

from autom.templating._checks import (
    check_count,
    check_length,
    check_percent_format,
    check_str_method,
)
from autom.templating._run import LimitExceeded, NotAllowed, check_time
from autom.templating._values import check_size, dumps, measure, to_text
from autom.templating.limits import Limits

# Largest `round` precision; `10 ** precision` is computed by the filter.
MAX_ROUND_PRECISION = 300

# Filters that only restructure their input (never turn it into text), so their input
# is not measured; their results are still size-checked.
_STRUCTURAL_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float",
        "groupby", "int", "items", "join", "last", "length", "list", "map", "max", "min",
        "random", "reject", "rejectattr", "reverse", "round", "select", "selectattr",
        "slice", "sort", "sum", "tojson", "unique",
    }
)  # fmt: skip
# pprint: Python repr, not JSON, and leaks type names; urlize: HTML only, and slow.
_REMOVED_FILTERS = frozenset({"pprint", "urlize"})


def guard_filter(name: str, func: Callable[..., Any], limit: int) -> Callable[..., Any]:
    """Check the deadline, measure text-producing inputs and size-check the result."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    structural = name in _STRUCTURAL_FILTERS
    what = f"filter {name!r}"

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_time()
        if not structural:
            for arg in itertools.chain(args[skip:], kwargs.values()):
                measure(arg, limit, what)
        result = func(*args, **kwargs)
        check_size(result, limit, f"result of {what}")
        return result

    return guarded


def build_filters(limits: Limits) -> dict[str, Callable[..., Any]]:
    """Jinja's built-in filters with size pre-checks, plus Autom's own."""
    work = limits.max_work_size
    builtin = {name: func for name, func in FILTERS.items() if name not in _REMOVED_FILTERS}

    def tojson(value: Any, indent: int | None = None) -> str:
        if indent is not None and not (isinstance(indent, int) and 0 <= indent <= 16):
            raise NotAllowed("tojson indent must be between 0 and 16")
        return dumps(value, work, indent=indent)

    def fromjson(value: Any) -> Any:
        if not isinstance(value, str):
            raise TemplateRuntimeError(f"fromjson expects a string, not {type(value).__name__}")
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise TemplateRuntimeError(f"fromjson: invalid JSON: {exc}") from None

    def b64encode(value: Any) -> str:
        return base64.b64encode(to_text(value, work).encode()).decode("ascii")

    def b64decode(value: Any) -> str:
        try:
            raw = base64.b64decode("".join(to_text(value, work).split()), validate=True)
        except binascii.Error:
            raise TemplateRuntimeError("b64decode: invalid base64 input") from None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise TemplateRuntimeError("b64decode: decoded bytes are not UTF-8 text") from None

    def string(value: Any) -> str:
        return to_text(value, work)

    def center(value: Any, width: int = 80) -> str:
        check_count(width, work, "center width")
        return do_center(value, width)

    def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        lines = str(s).count("\n") + 1
        unit = width if isinstance(width, int) else len(str(width))
        check_length(len(str(s)) + lines * unit, work, "indent result")
        return do_indent(s, width, first, blank)

    @pass_eval_context
    def replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
        check_str_method(str(s), "replace", (str(old), str(new)), {}, work)
        return do_replace(eval_ctx, s, old, new, count)

    @pass_environment
    def wordwrap(env: Any, s: Any, width: int = 79, *args: Any, **kwargs: Any) -> str:
        text = str(s)
        wrap = kwargs.get("wrapstring") or (args[1] if len(args) > 1 else None) or "\n"
        check_length(len(text) + (len(text) + 1) * len(str(wrap)), work, "wordwrap result")
        return do_wordwrap(env, s, width, *args, **kwargs)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        check_percent_format(str(value), work)
        return do_format(value, *args, **kwargs)

    @pass_eval_context
    def join(eval_ctx: EvalContext, value: Any, d: Any = "", attribute: Any = None) -> str:
        # Items are written as in string templates (containers as JSON), size-checked as built.
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        sep = to_text(d, work)
        parts: list[str] = []
        total = 0
        for item in value:
            parts.append(to_text(item, work))
            total += len(parts[-1]) + len(sep)
            check_length(total, work, "filter 'join' result")
        return sep.join(parts)

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        check_count(linecount, limits.max_range, "batch size")
        return do_batch(value, linecount, fill_with)

    def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
        check_count(slices, limits.max_range, "slice count")
        return sync_do_slice(value, slices, fill_with)

    @pass_environment
    def sum_(env: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, int | float):
            raise NotAllowed("sum only adds numbers")
        return sync_do_sum(env, iterable, attribute, start)

    def round_(value: Any, precision: int = 0, method: Any = "common") -> float:
        if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
            raise NotAllowed(f"round precision must be within ±{MAX_ROUND_PRECISION}")
        return do_round(value, precision, method)

    ours: dict[str, Callable[..., Any]] = {
        "tojson": tojson,
        "fromjson": fromjson,
        "b64encode": b64encode,
        "b64decode": b64decode,
        "string": string,
        "center": center,
        "indent": indent,
        "replace": replace,
        "wordwrap": wordwrap,
        "format": format_,
        "join": join,
        "batch": batch,
        "slice": slice_,
        "sum": sum_,
        "round": round_,
    }
    merged = {**builtin, **ours}
    return {name: guard_filter(name, func, work) for name, func in merged.items()}


def build_globals(max_range: int) -> dict[str, Any]:
    """Template globals: functions, never classes (`dict.update(x, ...)` would mutate)."""

    def range_(*args: int) -> range:
        result = range(*args)
        try:
            length = len(result)
        except OverflowError:
            length = max_range + 1
        if length > max_range:
            raise LimitExceeded(f"range() is limited to {max_range} items")
        return result

    def dict_(*args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def cycler(*items: Any) -> Cycler:
        return Cycler(*items)

    def joiner(sep: str = ", ") -> Joiner:
        return Joiner(sep)

    def namespace(*args: Any, **kwargs: Any) -> Namespace:
        return Namespace(*args, **kwargs)

    # No lipsum: it is costly with a large `n`.
    return {
        "range": range_,
        "dict": dict_,
        "cycler": cycler,
        "joiner": joiner,
        "namespace": namespace,
    }
