"""foreman-style prefixed, colored output shared by many threads and tasks."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TextIO

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
_SYSTEM_COLOR = "1;37"


def use_color(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """ANSI colors when FORCE_COLOR is set, else when `stream` is a TTY and NO_COLOR unset."""
    env = os.environ if environ is None else environ
    if env.get("FORCE_COLOR"):
        return True
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class PrefixPrinter:
    """Writes `HH:MM:SS name | text` lines, one name per color, whole lines only."""

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool,
        names: Iterable[str] = (),
        system_name: str = "dev",
    ) -> None:
        self._stream = stream
        self._color = color
        self._lock = threading.Lock()
        self._colors: dict[str, str] = {system_name: _SYSTEM_COLOR}
        self._width = len(system_name)
        self.system_name = system_name
        for name in names:
            self.register(name)

    def register(self, name: str) -> None:
        """Give `name` a color and widen the prefix column to fit it."""
        with self._lock:
            if name not in self._colors:
                self._colors[name] = _PALETTE[(len(self._colors) - 1) % len(_PALETTE)]
            self._width = max(self._width, len(name))

    def line(self, name: str, text: str) -> None:
        """Print one line of `name`'s output."""
        if name not in self._colors:
            self.register(name)
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            label = f"{name:<{self._width}} |"
            if self._color:
                prefix = f"{_DIM}{stamp}{_RESET} \x1b[{self._colors[name]}m{label}{_RESET}"
            else:
                prefix = f"{stamp} {label}"
            self._write(f"{prefix} {text}\n")

    def raw(self, text: str) -> None:
        """Print `text` as is, e.g. a banner meant for copying."""
        with self._lock:
            self._write(text if text.endswith("\n") else text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (BrokenPipeError, ValueError):  # our reader went away; keep running
            pass


class PrinterHandler(logging.Handler):
    """Routes log records to a PrefixPrinter under its system name."""

    def __init__(self, printer: PrefixPrinter) -> None:
        super().__init__()
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        for text in message.splitlines() or [""]:
            self._printer.line(self._printer.system_name, text)
