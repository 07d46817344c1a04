"""Transport-free failures of runs and steps; each becomes an ErrorDetail on the record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StepError(Exception):
    """A step (or run) failure with a stable type name and a retryable flag."""

    type_name = "StepError"
    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        type_name: str | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        if type_name is not None:
            self.type_name = type_name
        self.fields = list(fields)

    def detail(self) -> dict[str, Any]:
        """JSON form stored on step and run records."""
        return {
            "type": self.type_name,
            "message": self.message,
            "retryable": self.retryable,
            "fields": self.fields,
        }


class ActionNotFound(StepError):
    """The step names an action this executor does not know."""

    type_name = "ActionNotFound"
    default_retryable = False


class DispatchError(StepError):
    """The fire could not become a runnable run (bad inputs, missing definition)."""

    type_name = "DispatchError"
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        fields: Sequence[str] = (),
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message, fields=fields)
        # (field, sentence) pairs so StartRun can answer one BadRequest violation per field.
        self.violations = list(violations) or [(f, message) for f in fields]


class ParamsInvalid(StepError):
    """Rendered params do not satisfy the action's params schema."""

    type_name = "ValidationError"
    default_retryable = False


class TemplateFailure(StepError):
    """A template failed to parse or render."""

    type_name = "TemplateError"
    default_retryable = False


class SecretError(StepError):
    """Secrets referenced by the definition could not be resolved."""

    type_name = "SecretError"
    default_retryable = False


class StepTimeout(StepError):
    """An attempt ran past the step timeout."""

    type_name = "StepTimeout"
    default_retryable = True


class RunTimeout(StepError):
    """The run timeout elapsed."""

    type_name = "RunTimeout"
    default_retryable = False


class RunCancelled(StepError):
    """A caller or the concurrency policy cancelled the run."""

    type_name = "Cancelled"
    default_retryable = False


class BudgetExceeded(StepError):
    """The run's LLM spend reached execution.budget_usd."""

    type_name = "budget_exceeded"
    default_retryable = False


class OutputNotStorable(StepError):
    """The action succeeded but its output cannot be recorded (e.g. a NUL character)."""

    type_name = "OutputNotStorable"
    default_retryable = False


class RunAbandoned(StepError):
    """The run kept failing to make progress and was given up with the reason."""

    type_name = "RunAbandoned"
    default_retryable = False


class LeaseLost(Exception):
    """Another worker owns the run now; this worker must stop touching it."""


def error_from_exception(exc: BaseException) -> StepError:
    """Wrap any exception raised by an action as a StepError (retryable unless known not to be)."""
    if isinstance(exc, StepError):
        return exc
    message = str(exc) or type(exc).__name__
    return StepError(message, retryable=True, type_name=type(exc).__name__)
