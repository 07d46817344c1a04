"""Exit codes scripts can rely on, and gRPC failures turned into one readable sentence."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class ExitCode(IntEnum):
    """What `autom` exits with."""

    OK = 0
    RUN_FAILED = 1
    INVALID = 2
    NOT_FOUND = 3
    AUTH = 4
    UNAVAILABLE = 5
    # Someone else changed it first (ABORTED) or it exists already (ALREADY_EXISTS).
    CONFLICT = 6
    # The request is fine but the resource's state refuses it (FAILED_PRECONDITION).
    REFUSED = 7
    # A rate limit or quota (RESOURCE_EXHAUSTED): retry later.
    LIMITED = 8


_EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.INVALID,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.AUTH,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.AUTH,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REFUSED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.LIMITED,
}


class CliError(Exception):
    """A failure to report: one sentence, optional `field: problem` lines, an exit code."""

    def __init__(
        self,
        message: str,
        exit_code: ExitCode = ExitCode.UNAVAILABLE,
        violations: Sequence[tuple[str, str]] = (),
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.violations = list(violations)
        self.hint = hint


def usage(message: str, violations: Sequence[tuple[str, str]] = ()) -> CliError:
    """Bad input on the command line or in a file (exit 2)."""
    return CliError(message, ExitCode.INVALID, violations)


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return []
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [(v.field, v.description) for v in bad.field_violations]
    return out


# What gRPC reports when the client's own deadline expired (no answer from the server).
CLIENT_DEADLINE = "Deadline Exceeded"


def from_rpc_error(error: grpc.RpcError, service: str, address: str, has_token: bool) -> CliError:
    """The CliError for a failed call to `service` at `address`."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or ""
    exit_code = _EXIT_BY_CODE.get(code, ExitCode.UNAVAILABLE)
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details.lower():
        message = f"cannot reach the {service} service at {address}"
        hint = "Is the stack running (`make run`)? Set AUTOM_*_ADDR to point elsewhere."
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and details != CLIENT_DEADLINE:
        # The service gave up on its own deadline (e.g. the drafter's model call) and says
        # which server setting governs it; the client's AUTOM_TIMEOUT would not help.
        message = details or f"the {service} service did not answer in time"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"the {service} service did not answer in time"
        hint = "Raise the deadline with AUTOM_TIMEOUT=<seconds>."
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        message = details or "not authenticated"
        if not has_token:
            hint = "Set AUTOM_TOKEN or run `autom login --token <token>`."
    else:
        message = details or code.name.lower().replace("_", " ")
    violations = _violations(error)
    if violations and message.startswith("invalid request: "):
        # The service's message repeats the violations; they are listed one per line below.
        message = "invalid request"
    return CliError(message, exit_code, violations, hint)
