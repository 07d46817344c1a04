"""Typed drafting failures: each type has a gRPC code, a user sentence and an ErrorInfo reason.

Decision (DESIGN §8, §10): a failed generation is answered with the mapped gRPC error whose
ErrorInfo reason is the error type, and the failed revision is still stored on the draft
(status `failed`, `error.type` and `error.message`), so GetDraft/ListDrafts show it and a
RefineDraft or a retry with the same request_id can try again. Nothing becomes INTERNAL.
"""

from __future__ import annotations

from enum import StrEnum

import grpc

from autom.core.errors import AutomError


class ErrorType(StrEnum):
    """Why a generation failed (DraftError.type)."""

    NOT_CONFIGURED = "not_configured"
    LLM_TIMEOUT = "llm_timeout"
    LLM_RATE_LIMIT = "llm_rate_limit"
    LLM_PARSE_ERROR = "llm_parse_error"
    VALIDATION_ERROR = "validation_error"
    CONNECTION_ERROR = "connection_error"
    PROVIDER_ERROR = "provider_error"
    AUTH_ERROR = "auth_error"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
    UNKNOWN = "unknown"


CODES: dict[ErrorType, grpc.StatusCode] = {
    ErrorType.NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorType.LLM_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorType.LLM_RATE_LIMIT: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The model answered, but not with the JSON object asked for: asking again may work.
    ErrorType.LLM_PARSE_ERROR: grpc.StatusCode.UNAVAILABLE,
    ErrorType.VALIDATION_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorType.CONNECTION_ERROR: grpc.StatusCode.UNAVAILABLE,
    ErrorType.PROVIDER_ERROR: grpc.StatusCode.UNAVAILABLE,
    # The provider rejected the drafter's key: an operator must fix the deployment, and
    # UNAUTHENTICATED would wrongly tell the client its own token is bad.
    ErrorType.AUTH_ERROR: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorType.CONTEXT_WINDOW_EXCEEDED: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorType.UNKNOWN: grpc.StatusCode.UNKNOWN,
}

SENTENCES: dict[ErrorType, str] = {
    ErrorType.NOT_CONFIGURED: (
        "No drafting model is configured: set AUTOM_DRAFTER_MODEL to a litellm model string "
        "(for example openai/gpt-4o-mini) and restart the drafter."
    ),
    ErrorType.LLM_TIMEOUT: (
        "The drafting model did not answer in time; try again, or raise "
        "AUTOM_DRAFTER_TIMEOUT_SECONDS."
    ),
    ErrorType.LLM_RATE_LIMIT: (
        "The drafting model's provider is rate-limiting requests; wait a moment and try again."
    ),
    ErrorType.LLM_PARSE_ERROR: (
        "The drafting model did not answer with the JSON object it was asked for, even after "
        "being asked again; try again or rephrase the request."
    ),
    ErrorType.VALIDATION_ERROR: (
        "The drafted automation is still invalid after the repair rounds; see the violations, "
        "then refine the draft or edit it before approving."
    ),
    ErrorType.CONNECTION_ERROR: (
        "The drafting model's provider could not be reached (the connection failed or was "
        "dropped); check AUTOM_DRAFTER_API_BASE and the network, then try again."
    ),
    ErrorType.PROVIDER_ERROR: (
        "The drafting model's provider answered with a server error (HTTP 5xx); it is having "
        "trouble on its side, try again later."
    ),
    ErrorType.AUTH_ERROR: (
        "The drafting model's provider rejected the drafter's credentials; an operator must "
        "check AUTOM_DRAFTER_API_KEY."
    ),
    ErrorType.CONTEXT_WINDOW_EXCEEDED: (
        "The request and the conversation so far are too long for the drafting model; start "
        "a new draft with a shorter request."
    ),
    ErrorType.UNKNOWN: "The drafting model failed unexpectedly; try again later.",
}


class DraftFailed(AutomError):
    """A generation failed with a typed reason; the status message is the user sentence."""

    def __init__(self, error_type: ErrorType, message: str | None = None) -> None:
        self.error_type = error_type
        self.code = CODES[error_type]
        super().__init__(message or SENTENCES[error_type], reason=error_type.value)


class UpstreamError(AutomError):
    """A definitions or scheduler call failed; its code and reason pass through unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        self.code = code
        super().__init__(message, reason=reason)
