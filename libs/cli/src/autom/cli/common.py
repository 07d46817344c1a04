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
from autom.cli.output import Out

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print canonical JSON instead of tables (for scripts).")
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
