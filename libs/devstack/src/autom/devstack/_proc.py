"""Child-process plumbing shared by the embedded servers and the supervisor."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

LineHandler = Callable[[str], None]


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def child_preexec(death_signal: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a preexec_fn making the child receive `death_signal` when we die.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is only
    armed when forking from the main thread; elsewhere the child would die with a worker
    thread.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.debug("not forking from the main thread; child will not get PR_SET_PDEATHSIG")
        return None
    prctl = _prctl()  # resolved before fork: the child must not load libraries
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        # We may have died between fork() and prctl(); then nobody will send the signal.
        if os.getppid() != parent:
            os.kill(os.getpid(), death_signal)

    return preexec


def child_options(death_signal: signal.Signals = signal.SIGTERM) -> dict[str, Any]:
    """Popen keyword arguments for a child that never outlives us and ignores our Ctrl-C."""
    return {
        "process_group": 0,
        "preexec_fn": child_preexec(death_signal),
        "close_fds": True,
    }


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group led by `pid`, ignoring a group that is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class OutputPump:
    """Reads a child's output on a thread, hands each line on and keeps the last ones."""

    def __init__(self, stream: IO[bytes], on_line: LineHandler, *, name: str, keep: int = 60):
        self._stream = stream
        self._on_line = on_line
        self._tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"{name}-output", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def tail(self) -> list[str]:
        """The most recent lines."""
        with self._lock:
            return list(self._tail)

    def join(self, timeout: float = 2.0) -> None:
        """Wait for end of output (bounded: a grandchild may hold the pipe open)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        with self._stream:
            for raw in iter(self._stream.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                with self._lock:
                    self._tail.append(line)
                try:
                    self._on_line(line)
                except Exception:  # a broken printer must not stop draining the pipe
                    logger.exception("output handler failed")


def stop_process(
    proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float, *, what: str
) -> int:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL; return the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", what, timeout)
            proc.kill()
    return proc.wait()
