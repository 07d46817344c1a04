"""State of one render (step budget, deadline, output used) and the sandbox's errors."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from jinja2.exceptions import SecurityError, TemplateRuntimeError

from autom.templating.limits import Limits


class LimitExceeded(SecurityError):
    """A render went over one of its `Limits`."""


class NotAllowed(SecurityError):
    """A template asked for an operation the sandbox refuses."""


class Unrenderable(TemplateRuntimeError):
    """A value that is not data (a function, a Jinja helper object) reached an output."""


@dataclass
class Run:
    """Mutable state of one `render_value` / `evaluate_condition` call."""

    limits: Limits
    deadline: float
    steps: int = 0
    output: int = 0
    names: dict[int, str] = field(default_factory=dict)

    def tick(self) -> None:
        """Count one loop iteration or call, and check the deadline."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise LimitExceeded(
                f"template exceeded {self.limits.max_steps} steps (loop iterations and calls)"
            )
        self.check_time()

    def check_time(self) -> None:
        """Fail once the wall-clock deadline has passed."""
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"template rendering took longer than {self.limits.timeout:g}s")

    def add_output(self, size: int) -> None:
        """Account for rendered output against `max_output_size`."""
        self.output += size
        if self.output > self.limits.max_output_size:
            raise LimitExceeded(
                f"rendered output exceeds the size limit of {self.limits.max_output_size}"
                " characters"
            )

    @property
    def output_left(self) -> int:
        """Output characters still allowed."""
        return self.limits.max_output_size - self.output


CURRENT_RUN: ContextVar[Run | None] = ContextVar("autom_templating_run", default=None)


def check_time() -> None:
    """Fail if the current render is past its deadline."""
    run = CURRENT_RUN.get()
    if run is not None:
        run.check_time()
