"""Shared pieces of every command: options, the session, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, ParamSpec, TypeVar

import typer

from autom.cli.client import Api
from autom.cli.config import CliConfig, ConfigFileError
from autom.cli.errors import CliError, ExitCode
from autom.cli.output import Out, output_format

P = ParamSpec("P")
R = TypeVar("R")


def _json_or_output(value: bool) -> bool:
    # `-o json|yaml` anywhere on the line means the same as `--json` (YAML is printed by Out).
    return value or output_format() in ("json", "yaml")


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print canonical JSON instead of tables (for scripts); or -o table|json|yaml.",
        callback=_json_or_output,
    ),
]


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Report CliErrors as one sentence (plus field paths) and exit with their code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as err:
            Out(bool(kwargs.get("json_out"))).error(err)
            raise typer.Exit(int(err.exit_code)) from None
        except ConfigFileError as exc:
            Out(bool(kwargs.get("json_out"))).error(CliError(str(exc), ExitCode.INVALID))
            raise typer.Exit(int(ExitCode.INVALID)) from None

    return wrapper


@contextmanager
def session(json_out: bool) -> Iterator[tuple[Api, Out]]:
    """The API client and output of one command; channels closed at the end."""
    api = Api(CliConfig.load())
    try:
        yield api, Out(json_out)
    finally:
        api.close()


def new_request_id() -> str:
    """A fresh idempotency key for one command invocation."""
    import uuid

    return str(uuid.uuid4())
