"""Human output (rich tables) and script output (canonical proto3 JSON)."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autom.cli.errors import CliError, ExitCode


def integral(value: Any) -> Any:
    """Integral floats as ints (`42`, not Python's `42.0`), as other proto3 JSON printers do."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def to_json(message: Message) -> dict[str, Any]:
    """Canonical proto3 JSON (lowerCamelCase, enums by name, int64 as strings, defaults shown)."""
    result: dict[str, Any] = integral(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    )
    return result


def enum_label(message: Message, field: str) -> str:
    """`AUTOMATION_STATUS_ACTIVE` -> `active` for an enum field of a message."""
    descriptor: Any = message.DESCRIPTOR.fields_by_name[field].enum_type
    name: str = descriptor.values_by_number[getattr(message, field)].name
    prefix = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(descriptor.name))
    return name.removeprefix(prefix.upper() + "_").lower()


def ts(value: Any, tz: str | None = None) -> str:
    """A Timestamp as `YYYY-MM-DD HH:MM:SS` (UTC, or in `tz`); `-` when unset."""
    if value is None or (value.seconds == 0 and value.nanos == 0):
        return "-"
    moment = value.ToDatetime(tzinfo=UTC)
    if tz:
        try:
            return str(moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z"))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return str(moment.strftime("%Y-%m-%d %H:%M:%SZ"))


def elapsed(start: Any, end: Any) -> str:
    """Seconds between two Timestamps, `-` when either is unset."""
    if start is None or end is None or start.seconds == 0 or end.seconds == 0:
        return "-"
    seconds = (end.ToDatetime(tzinfo=UTC) - start.ToDatetime(tzinfo=UTC)).total_seconds()
    return f"{seconds:.2f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def now_utc() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


OUTPUT_FORMATS = ("table", "json", "yaml")
# Set from `-o/--output` wherever it stands on the command line (see OutputGroup).
_FORMAT: contextvars.ContextVar[str | None] = contextvars.ContextVar("output", default=None)


def output_format() -> str | None:
    """The `-o` of this invocation, if any."""
    return _FORMAT.get()


def split_output_option(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """`-o X` / `-oX` / `--output X` / `--output=X` out of `args` (up to `--`), and the rest."""
    found: str | None = None
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--":
            rest.append(arg)
            rest.extend(items)
            break
        if arg in ("-o", "--output"):
            found = next(items, "")
        elif arg.startswith("--output="):
            found = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            found = arg[2:]
        else:
            rest.append(arg)
    if found is not None and found not in OUTPUT_FORMATS:
        raise CliError(
            f"-o {found!r}: use one of {', '.join(OUTPUT_FORMATS)}", ExitCode.INVALID, [], ""
        )
    return found, rest


def set_output_format(value: str | None) -> None:
    """Record this invocation's `-o`."""
    _FORMAT.set(value)


class Out:
    """Where a command writes: tables for people, JSON for scripts, errors to stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Built per command so CliRunner/pipes are honoured; no colour codes when piped.
        self.console = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, value: Message | dict[str, Any] | list[Any], *, compact: bool = False) -> None:
        """Print JSON (a message in its canonical form)."""
        data = to_json(value) if isinstance(value, Message) else value
        if output_format() == "yaml":
            self.console.file.write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
            self.console.file.flush()
            return
        text = (
            json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            if compact
            else (json.dumps(data, ensure_ascii=False, indent=2))
        )
        self.console.file.write(text + "\n")
        self.console.file.flush()

    def print(self, *items: Any, style: str | None = None) -> None:
        """Print rich renderables or text."""
        self.console.print(*items, style=style)

    def table(
        self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
    ) -> None:
        """A borderless table whose cells fold instead of being cut."""
        table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        count = 0
        for row in rows:
            table.add_row(*(c if isinstance(c, Text) else str(c) for c in row))
            count += 1
        if count:
            self.console.print(table)
        else:
            self.console.print(Text("(none)", style="dim"))

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Key/value lines, keys aligned."""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in pairs:
            table.add_row(key, value if isinstance(value, Text) else str(value))
        self.console.print(table)

    def error(self, err: CliError) -> None:
        """One sentence, the field paths, a hint; JSON on stderr in --json mode."""
        if self.json_mode:
            payload = {
                "error": {
                    "message": err.message,
                    "exitCode": int(err.exit_code),
                    "fieldViolations": [{"field": f, "description": d} for f, d in err.violations],
                }
            }
            self.err.file.write(json.dumps(payload) + "\n")
            return
        first = err.message.split(" ", 1)[0]
        # Capitalise a sentence, not a path or an identifier that happens to start it.
        message = err.message[:1].upper() + err.message[1:] if first.isalpha() else err.message
        if not message.endswith((".", ":")):
            message += ":" if err.violations else "."
        self.err.print(Text("Error: ", style="bold red") + Text(message))
        for field, description in err.violations:
            self.err.print(
                Text("  " + (field or "(request)"), style="bold") + Text(f": {description}")
            )
        if err.hint:
            self.err.print(Text(err.hint, style="dim"))
