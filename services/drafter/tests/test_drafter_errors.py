"""Error types: codes, sentences, ErrorInfo, and classification of provider exceptions."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from autom.core.errors import to_status_proto
from autom.drafter.errors import CODES, SENTENCES, DraftFailed, ErrorType
from autom.drafter.llm import classify, load_litellm

litellm = load_litellm()
_REQ = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _resp(status: int) -> httpx.Response:
    return httpx.Response(status, request=_REQ)


def test_every_type_has_a_non_internal_code_and_a_sentence() -> None:
    for kind in ErrorType:
        assert CODES[kind] not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.OK)
        assert SENTENCES[kind].endswith(".")
    assert "AUTOM_DRAFTER_MODEL" in SENTENCES[ErrorType.NOT_CONFIGURED]
    assert CODES[ErrorType.NOT_CONFIGURED] == grpc.StatusCode.FAILED_PRECONDITION
    assert CODES[ErrorType.LLM_TIMEOUT] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert CODES[ErrorType.LLM_RATE_LIMIT] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert CODES[ErrorType.CONNECTION_ERROR] == grpc.StatusCode.UNAVAILABLE


def test_draft_failed_carries_error_info_reason() -> None:
    status = to_status_proto(DraftFailed(ErrorType.LLM_RATE_LIMIT))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == SENTENCES[ErrorType.LLM_RATE_LIMIT]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "llm_rate_limit"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (litellm.exceptions.Timeout("t", model="m", llm_provider="openai"), "llm_timeout"),
        (TimeoutError(), "llm_timeout"),
        (
            litellm.exceptions.RateLimitError("r", llm_provider="openai", model="m"),
            "llm_rate_limit",
        ),
        (
            litellm.exceptions.AuthenticationError("a", llm_provider="openai", model="m"),
            "auth_error",
        ),
        (
            litellm.exceptions.PermissionDeniedError(
                "p", llm_provider="openai", model="m", response=_resp(403)
            ),
            "auth_error",
        ),
        (
            litellm.exceptions.ContextWindowExceededError("c", model="m", llm_provider="openai"),
            "context_window_exceeded",
        ),
        (
            litellm.exceptions.APIConnectionError("c", llm_provider="openai", model="m"),
            "connection_error",
        ),
        # The provider answered, with a server error: not a connection problem.
        (
            litellm.exceptions.ServiceUnavailableError("s", llm_provider="openai", model="m"),
            "provider_error",
        ),
        (
            litellm.exceptions.InternalServerError("i", llm_provider="openai", model="m"),
            "provider_error",
        ),
        (litellm.exceptions.NotFoundError("n", model="m", llm_provider="openai"), "not_configured"),
        (
            litellm.exceptions.BadRequestError(
                "LLM Provider NOT provided. Pass in the LLM provider", model="m", llm_provider=""
            ),
            "not_configured",
        ),
        (
            litellm.exceptions.BadRequestError("bad", model="m", llm_provider="openai"),
            "unknown",
        ),
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.ReadTimeout("slow"), "llm_timeout"),
        (ValueError("anything else"), "unknown"),
        (DraftFailed(ErrorType.LLM_PARSE_ERROR), "llm_parse_error"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert classify(exc).value == kind
