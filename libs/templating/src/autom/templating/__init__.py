"""Sandboxed Jinja templating for Autom step params and `when` conditions (DESIGN §5).

Rendering: Jinja2 `ImmutableSandboxedEnvironment`, `StrictUndefined`, autoescape off, no
loader (`include`/`import`/`extends` are refused). Only strings containing `{{` or `{%` are
templates. A string that is exactly one `{{ expr }}` (blank text around it allowed) renders
to the expression's native JSON-like value; any other renders to a string, where scalars
print as Jinja prints them and lists/objects as JSON. Rendering is one pass: values read
from the context are data and are never rendered again. On JSON objects `.key` prefers the
key over a dict method (`output.items` is the "items" key). Errors become `TemplateError`
with the field path; messages never contain the values of the context's `secrets`.

Caps (`Limits`, all per call): the sandbox refuses `_`-prefixed attributes, mutation of
lists and dicts, calls of builtin methods not on an allow-list, and non-data values
(functions, classes, helper objects) reaching output, formatting or text filters.
`max_steps` bounds loop iterations plus calls (macros, recursion, methods, globals);
`timeout` is a wall-clock deadline checked at every step, filter, join and output chunk;
`max_range` bounds `range()` and count arguments (`batch`, `slice`); `max_work_size`
bounds every string or list built (`*` repetition, `+`, `~`, joins, widths in
`center`/`ljust`/`format`/`%`, `replace` growth, filter results, JSON text) and is checked
before the allocation where the result size is predictable; `max_output_size` bounds all
output of one `render_value` call. Integers built by `*`/`**` are capped at 65536 bits.
"""

from autom.templating._paths import is_template, iter_templates
from autom.templating._values import FALSY_STRINGS
from autom.templating.engine import (
    TemplateEngine,
    default_engine,
    evaluate_condition,
    parse_condition,
    parse_template,
    referenced_names,
    referenced_step_ids,
    render_value,
)
from autom.templating.errors import TemplateError
from autom.templating.limits import Limits
from autom.templating.redaction import redact

__all__ = [
    "FALSY_STRINGS",
    "Limits",
    "TemplateEngine",
    "TemplateError",
    "default_engine",
    "evaluate_condition",
    "is_template",
    "iter_templates",
    "parse_condition",
    "parse_template",
    "redact",
    "referenced_names",
    "referenced_step_ids",
    "render_value",
]
