"""Transport-free domain errors and their mapping to gRPC status with google.rpc details."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "autom.dev"


@dataclass(frozen=True)
class Violation:
    """One invalid field: a path like `plan[1].params.url` and a human sentence."""

    field: str
    description: str


class AutomError(Exception):
    """Base of every domain error; `code` is the gRPC status it maps to."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "internal"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class ValidationFailed(AutomError):
    """Input is invalid; carries every violation at once."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "validation_error"

    def __init__(self, violations: Sequence[Violation], message: str | None = None) -> None:
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:5])
        super().__init__(message or f"invalid request: {summary}")


class NotFound(AutomError):
    """A resource does not exist, or belongs to another workspace."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"

    def __init__(self, resource_type: str, name: str) -> None:
        self.resource_type = resource_type
        self.name = name
        super().__init__(f"{resource_type} {name!r} not found")


class AlreadyExists(AutomError):
    """A resource with that unique key exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "already_exists"


class Conflict(AutomError):
    """A concurrent change won: the caller must re-read (version conflict)."""

    code = grpc.StatusCode.ABORTED
    reason = "version_conflict"


class FailedPrecondition(AutomError):
    """The system is not in a state that allows the operation."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "failed_precondition"


class PermissionDenied(AutomError):
    """The caller is authenticated but not allowed."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "permission_denied"


class Unauthenticated(AutomError):
    """No valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "unauthenticated"


class Unavailable(AutomError):
    """A dependency is unavailable; retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"


class DeadlineExceeded(AutomError):
    """A dependency took too long."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "deadline_exceeded"


class ResourceExhausted(AutomError):
    """A quota or rate limit was hit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "resource_exhausted"


class QuotaExceeded(ResourceExhausted):
    """A workspace quota is reached: names the limit, the current value and the limit."""

    reason = "quota_exceeded"

    def __init__(self, workspace_id: str, limit_name: str, current: float, limit: float) -> None:
        self.workspace_id = workspace_id
        self.limit_name = limit_name
        self.current = current
        self.limit = limit
        super().__init__(
            f"quota {limit_name} of workspace {workspace_id} reached: "
            f"current {_number(current)}, limit {_number(limit)}"
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status_proto(exc: AutomError) -> status_pb2.Status:
    """Build a google.rpc.Status with ErrorInfo and, per type, BadRequest or ResourceInfo."""
    code_value = exc.code.value[0]
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN)
    if isinstance(exc, QuotaExceeded):
        info.metadata.update(
            {
                "limit_name": exc.limit_name,
                "current": _number(exc.current),
                "limit": _number(exc.limit),
            }
        )
    details = [_pack(info)]
    if isinstance(exc, QuotaExceeded):
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=f"workspace:{exc.workspace_id}",
                            description=exc.message,
                        )
                    ]
                )
            )
        )
    if isinstance(exc, ValidationFailed):
        details.append(_pack(bad_request(exc.violations)))
    if isinstance(exc, NotFound):
        details.append(
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type=exc.resource_type, resource_name=exc.name
                )
            )
        )
    return status_pb2.Status(code=code_value, message=exc.message, details=details)


def bad_request(violations: Iterable[Violation]) -> error_details_pb2.BadRequest:
    """google.rpc.BadRequest from violations."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )


def internal_status() -> status_pb2.Status:
    """The only thing a client learns of an unexpected exception."""
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
