"""gRPC status -> HTTP status and a `google.rpc.Status` JSON body; never a stack trace."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from autom.core.errors import AutomError, Violation, to_status_proto
from autom.core.errors import ValidationFailed as _ValidationFailed

log = logging.getLogger(__name__)

# Importing error_details_pb2 puts google.rpc.* in the default pool, so json_format can
# render packed details as {"@type": ..., ...}.
_DETAIL_TYPES = error_details_pb2

# The grpc-gateway mapping (runtime.HTTPStatusFromCode).
HTTP_STATUS: dict[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}

# Statuses that did not come from an Autom interceptor carry transport internals (addresses,
# resolver errors) in their message; clients get a plain sentence instead.
_GENERIC: dict[int, str] = {
    code_pb2.UNAVAILABLE: "the {service} service is unavailable; retry later",
    code_pb2.DEADLINE_EXCEEDED: "the {service} service did not answer in time",
    code_pb2.UNKNOWN: "internal error",
    code_pb2.INTERNAL: "internal error",
    code_pb2.DATA_LOSS: "internal error",
    code_pb2.CANCELLED: "the request was cancelled",
    code_pb2.UNIMPLEMENTED: "the {service} service does not implement this operation",
    code_pb2.RESOURCE_EXHAUSTED: "the {service} service is overloaded; retry later",
}


def http_status(code: int) -> int:
    """HTTP status for a google.rpc.Code value."""
    return HTTP_STATUS.get(code, 500)


def status_of(code: int, message: str, violations: Sequence[Violation] = ()) -> status_pb2.Status:
    """A Status built the same way services build theirs (ErrorInfo + BadRequest)."""
    if code == code_pb2.INVALID_ARGUMENT:
        return to_status_proto(_ValidationFailed(list(violations), message=message))
    exc = AutomError(message, reason=code_pb2.Code.Name(code).lower())
    exc.code = _grpc_code(code)
    return to_status_proto(exc)


def _grpc_code(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


def status_from_rpc_error(error: grpc.RpcError, service: str) -> status_pb2.Status:
    """The google.rpc.Status an upstream call ended with, details decoded."""
    code_enum = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    code = code_enum.value[0] if isinstance(code_enum, grpc.StatusCode) else code_pb2.UNKNOWN
    try:
        rich = rpc_status.from_call(error)
    except ValueError:
        # Header and trailer disagree: trust neither the message nor the details.
        rich = None
    if rich is not None:
        return rich
    details = error.details() if hasattr(error, "details") else None
    generic = _GENERIC.get(code)
    if generic is not None:
        if code != code_pb2.CANCELLED:
            log.warning("upstream %s failed: %s %s", service, code_enum, details)
        return status_pb2.Status(code=code, message=generic.format(service=service))
    return status_pb2.Status(code=code, message=str(details or ""))


def status_json(status: status_pb2.Status) -> dict[str, Any]:
    """Status as proto3 JSON; a detail of an unknown type degrades to its raw bytes."""
    details: list[dict[str, Any]] = []
    for detail in status.details:
        try:
            details.append(json_format.MessageToDict(detail))
        except Exception:
            details.append(
                {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}
            )
    return {"code": status.code, "message": status.message, "details": details}
