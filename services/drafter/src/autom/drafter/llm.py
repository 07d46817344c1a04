"""The sub-LLM through litellm: one chat completion, usage and cost, typed failures."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from opentelemetry.trace import SpanKind

from autom.core import metrics, tracing
from autom.drafter.errors import DraftFailed, ErrorType
from autom.drafter.settings import DrafterSettings

log = logging.getLogger(__name__)


_prepared = False


def load_litellm() -> ModuleType:
    """litellm, imported on first use (it is slow to import) and prepared once."""
    global _prepared
    # A self-hosted service must not fetch litellm's price list from GitHub at start: use
    # the copy shipped in the wheel (unless the operator says otherwise).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    module = importlib.import_module("litellm")
    if not _prepared:
        module.suppress_debug_info = True  # type: ignore[attr-defined]
        # pydantic warns once while building litellm's response schema (a ReadOnly
        # TypedDict). Build it here, quietly: where warnings are errors (the test suite),
        # that warning would otherwise surface inside the first call as a connection error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module.ModelResponse()
        _prepared = True
    return module


@dataclass(frozen=True)
class Completion:
    """One model answer with its usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (litellm wraps the SDK's, which wraps httpx's)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _unreadable_body(chain: list[BaseException]) -> bool:
    # litellm reports a 200 whose body is not a chat completion (an HTML page, a proxy's
    # text) as a 500 carrying this sentence; a JSON decoding error may be wrapped instead.
    return any(
        isinstance(e, json.JSONDecodeError) or "Empty or invalid response" in str(e) for e in chain
    )


def classify(exc: BaseException) -> ErrorType:
    """Map a litellm/openai/httpx exception to the drafter's error type.

    A server error of the provider (HTTP 5xx), an answer that is not JSON and a dropped or
    refused connection look alike at the top (litellm raises InternalServerError for all
    three), so the wrapped causes decide.
    """
    if isinstance(exc, DraftFailed):
        return exc.error_type
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ErrorType.LLM_TIMEOUT
    lx = load_litellm().exceptions
    # Both come with litellm (imported above), which wraps their exceptions.
    import httpx
    import openai

    chain = _causes(exc)
    # Order matters: Timeout subclasses APIConnectionError, ContextWindowExceededError
    # subclasses BadRequestError.
    if isinstance(exc, lx.Timeout) or any(isinstance(e, httpx.TimeoutException) for e in chain):
        return ErrorType.LLM_TIMEOUT
    if isinstance(exc, lx.ContextWindowExceededError):
        return ErrorType.CONTEXT_WINDOW_EXCEEDED
    if isinstance(exc, lx.RateLimitError):
        return ErrorType.LLM_RATE_LIMIT
    if isinstance(exc, lx.AuthenticationError | lx.PermissionDeniedError):
        return ErrorType.AUTH_ERROR
    if isinstance(exc, lx.NotFoundError):
        return ErrorType.NOT_CONFIGURED
    if isinstance(exc, lx.BadRequestError) and "LLM Provider NOT provided" in str(exc):
        return ErrorType.NOT_CONFIGURED
    if any(isinstance(e, httpx.TransportError | openai.APIConnectionError) for e in chain):
        return ErrorType.CONNECTION_ERROR
    if _unreadable_body(chain):
        return ErrorType.LLM_PARSE_ERROR
    code = _status_code(exc)
    if code == 429:
        return ErrorType.LLM_RATE_LIMIT
    if code in (401, 403):
        return ErrorType.AUTH_ERROR
    if code in (408, 504):
        return ErrorType.LLM_TIMEOUT
    if (code is not None and code >= 500) or isinstance(
        exc, lx.ServiceUnavailableError | lx.InternalServerError | lx.BadGatewayError
    ):
        return ErrorType.PROVIDER_ERROR
    if isinstance(exc, lx.APIConnectionError):
        return ErrorType.CONNECTION_ERROR
    return ErrorType.UNKNOWN


_NOT_JSON = (
    "The drafting model's provider answered with a body that is not an OpenAI-compatible "
    "JSON response (an HTML page or a proxy's error?); check AUTOM_DRAFTER_API_BASE."
)


_MODEL_NOT_FOUND = (
    "The drafting model's provider does not know the model set in AUTOM_DRAFTER_MODEL; "
    "check the model string and AUTOM_DRAFTER_API_BASE."
)


class LlmClient:
    """Calls the configured model; every failure leaves as DraftFailed with its type."""

    def __init__(self, settings: DrafterSettings) -> None:
        self._model = (settings.model or "").strip()
        self._api_base = settings.api_base or None
        self._api_key = settings.api_key
        self._timeout = settings.timeout_seconds
        self._num_retries = settings.num_retries
        self._temperature = settings.temperature
        self._max_tokens = settings.max_tokens
        self._json_mode: bool | None = None

    @property
    def model(self) -> str:
        """The litellm model string ('' when not configured)."""
        return self._model

    def require_configured(self) -> None:
        """Fail fast with not_configured when no model is set."""
        if not self._model:
            raise DraftFailed(ErrorType.NOT_CONFIGURED)

    def _supports_json_mode(self) -> bool:
        if self._json_mode is None:
            try:
                params = load_litellm().get_supported_openai_params(model=self._model) or []
                self._json_mode = "response_format" in params
            except Exception:
                # Unknown to litellm's tables: ask for plain JSON in the prompt only.
                self._json_mode = False
        return self._json_mode

    def _redact(self, text: str) -> str:
        key = self._api_key.get_secret_value() if self._api_key is not None else ""
        return text.replace(key, "***") if key else text

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One chat completion; JSON mode where the provider supports it."""
        self.require_configured()
        litellm = load_litellm()
        kwargs: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "timeout": self._timeout,
            "num_retries": self._num_retries,
            # litellm does the retrying; the OpenAI SDK's own retries would multiply them.
            "max_retries": 0,
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
            # Some models refuse e.g. temperature; dropping the param beats failing the draft.
            "drop_params": True,
        }
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key.get_secret_value()
        if self._supports_json_mode():
            kwargs["response_format"] = {"type": "json_object"}
        # A hard bound over litellm's own timeout and retries, so an RPC never hangs.
        bound = self._timeout * (1 + self._num_retries) + 1.0
        started = time.monotonic()
        try:
            with tracing.span(
                f"llm {self._model}",
                kind=SpanKind.CLIENT,
                attributes={"gen_ai.system": "litellm", "gen_ai.request.model": self._model},
            ):
                response = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=bound)
        except Exception as exc:
            metrics.record_llm_call("drafter", self._model, ok=False)
            kind = classify(exc)
            log.warning(
                "drafting model call failed: model=%s type=%s error=%s: %s",
                self._model,
                kind.value,
                type(exc).__name__,
                self._redact(str(exc))[:300],
            )
            if kind is ErrorType.NOT_CONFIGURED:
                raise DraftFailed(kind, _MODEL_NOT_FOUND) from None
            if kind is ErrorType.LLM_PARSE_ERROR:
                raise DraftFailed(kind, _NOT_JSON) from None
            raise DraftFailed(kind) from None
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:
            cost = 0.0  # the model's price is unknown to litellm
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            text = ""
        metrics.record_llm_call(
            "drafter",
            self._model,
            ok=True,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
        )
        log.info(
            "drafting model answered: model=%s tokens=%d+%d cost_usd=%.6f in %.2fs",
            self._model,
            prompt_tokens,
            completion_tokens,
            cost,
            time.monotonic() - started,
        )
        return Completion(text, prompt_tokens, completion_tokens, cost)
