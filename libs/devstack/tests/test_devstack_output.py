"""Prefixed, padded, optionally colored output."""

from __future__ import annotations

import io
import logging

from autom.devstack.output import PrefixPrinter, PrinterHandler, use_color


def test_lines_are_prefixed_with_padded_names() -> None:
    out = io.StringIO()
    printer = PrefixPrinter(out, color=False, names=["definitions", "nats"])

    printer.line("nats", "hello")
    printer.line("definitions", "world")

    first, second = out.getvalue().splitlines()
    assert first[9:] == "nats        | hello"
    assert second[9:] == "definitions | world"


def test_colored_lines_use_one_color_per_name() -> None:
    out = io.StringIO()
    printer = PrefixPrinter(out, color=True, names=["a", "b"])

    printer.line("a", "x")
    printer.line("b", "y")

    a, b = out.getvalue().splitlines()
    assert "\x1b[36ma   |\x1b[0m x" in a
    assert "\x1b[33mb   |\x1b[0m y" in b


def test_color_follows_force_color_no_color_and_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color(io.StringIO(), {"FORCE_COLOR": "1"})
    assert not use_color(io.StringIO(), {})
    assert use_color(Tty(), {})
    assert not use_color(Tty(), {"NO_COLOR": "1"})


def test_log_records_go_out_under_the_system_name() -> None:
    out = io.StringIO()
    log = logging.getLogger("devstack-test-printer")
    handler = PrinterHandler(PrefixPrinter(out, color=False))
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("two\nlines")
    finally:
        log.removeHandler(handler)

    assert [line[9:] for line in out.getvalue().splitlines()] == ["dev | two", "dev | lines"]
