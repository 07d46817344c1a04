"""agent_task: one litellm completion, optional output_schema with one repair round, cost."""

from __future__ import annotations

import json
import os
import re
from types import ModuleType
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from opentelemetry.trace import SpanKind

from autom.core import metrics, tracing
from autom.core.jsonschemas import offline_validator, unresolvable_refs
from autom.executor.actions.base import ActionContext
from autom.executor.errors import BudgetExceeded, StepError

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class OutputSchemaError(StepError):
    """The model's answer did not satisfy output_schema after the repair round."""

    type_name = "OutputSchemaError"
    default_retryable = False


def _litellm() -> ModuleType:
    # A self-hosted deployment must not fetch litellm's price map from the internet at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def _classify(exc: Exception) -> StepError:
    litellm = _litellm()

    name = type(exc).__name__
    retryable = isinstance(
        exc,
        litellm.exceptions.RateLimitError
        | litellm.exceptions.Timeout
        | litellm.exceptions.APIConnectionError
        | litellm.exceptions.ServiceUnavailableError
        | litellm.exceptions.InternalServerError,
    )
    message = str(exc).splitlines()[0][:500] if str(exc) else name
    return StepError(message, retryable=retryable, type_name=f"llm_{name}")


def _parse_json(text: str) -> Any:
    stripped = text.strip()
    match = _FENCE.match(stripped)
    if match:
        stripped = match.group(1)
    return json.loads(stripped)


class AgentTask:
    """Calls litellm with the deployment's endpoint; records usage and cost on the context."""

    def __init__(
        self, *, default_model: str, api_base: str | None, api_key: str | None, timeout: float
    ) -> None:
        self._default_model = default_model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout = timeout

    async def _complete(
        self, model: str, messages: list[dict[str, str]], params: dict[str, Any], ctx: ActionContext
    ) -> str:
        litellm = _litellm()

        remaining = ctx.budget.remaining()
        if remaining is not None and remaining - ctx.cost_usd <= 0:
            raise BudgetExceeded(
                f"LLM budget of ${ctx.budget.limit_usd:.4f} is spent "
                f"(${ctx.budget.spent_usd + ctx.cost_usd:.4f})"
            )
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": self._timeout}
        if params.get("temperature") is not None:
            kwargs["temperature"] = params["temperature"]
        if params.get("max_tokens") is not None:
            kwargs["max_tokens"] = params["max_tokens"]
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        with tracing.tracer().start_as_current_span(
            f"llm {model}",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.system": "litellm", "gen_ai.request.model": model},
        ) as span:
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                metrics.record_llm_call("agent_task", model, ok=False)
                raise _classify(exc) from exc
            usage_of = getattr(response, "usage", None)
            for key, name in (("prompt_tokens", "input"), ("completion_tokens", "output")):
                value = getattr(usage_of, key, None) if usage_of is not None else None
                if isinstance(value, int):
                    span.set_attribute(f"gen_ai.usage.{name}_tokens", value)
        usage = getattr(response, "usage", None)
        counted: dict[str, int] = {}
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(usage, key, None) if usage is not None else None
            if isinstance(value, int):
                ctx.usage[key] = ctx.usage.get(key, 0) + value
                counted[key] = value
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:
            # Unknown models have no price; spend counts as zero rather than failing the step.
            cost = 0.0
        ctx.cost_usd += cost
        metrics.record_llm_call(
            "agent_task",
            model,
            ok=True,
            prompt_tokens=counted.get("prompt_tokens", 0),
            completion_tokens=counted.get("completion_tokens", 0),
            cost_usd=cost,
        )
        limit = ctx.budget.limit_usd
        if limit is not None and ctx.budget.spent_usd + ctx.cost_usd > limit:
            raise BudgetExceeded(
                f"LLM spend ${ctx.budget.spent_usd + ctx.cost_usd:.4f} exceeds the run budget "
                f"of ${limit:.4f}"
            )
        content = response.choices[0].message.content
        return content if isinstance(content, str) else ""

    async def __call__(self, params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        model = str(params.get("model") or self._default_model)
        if params.get("tools"):
            raise StepError(
                "agent_task tools are not available: no capabilities are registered",
                retryable=False,
                type_name="ValidationError",
            )
        schema = params.get("output_schema")
        messages: list[dict[str, str]] = []
        system = str(params.get("system") or "")
        if schema:
            system = (
                (f"{system}\n\n" if system else "")
                + "Answer with one JSON value only, no prose, matching this JSON Schema:\n"
                + (json.dumps(schema))
            )
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": str(params["prompt"])})
        text = await self._complete(model, messages, params, ctx)
        output: dict[str, Any] = {"text": text, "model": model}
        if schema:
            try:
                validator = offline_validator(schema)
            except jsonschema.SchemaError as exc:
                raise OutputSchemaError(f"output_schema is invalid: {exc.message}") from exc
            for _path, message in unresolvable_refs(schema)[:1]:
                raise OutputSchemaError(f"output_schema is invalid: {message}")
            value, problem = self._check(text, validator)
            if problem is not None:
                # One repair round: show the model its answer and what is wrong with it.
                messages += [
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": f"That answer is invalid: {problem}. Reply with corrected "
                        "JSON only.",
                    },
                ]
                text = await self._complete(model, messages, params, ctx)
                output["text"] = text
                value, problem = self._check(text, validator)
                if problem is not None:
                    raise OutputSchemaError(f"model output does not match output_schema: {problem}")
            output["json"] = value
        output["usage"] = dict(ctx.usage)
        output["cost_usd"] = ctx.cost_usd
        return output

    @staticmethod
    def _check(text: str, validator: Draft202012Validator) -> tuple[Any, str | None]:
        try:
            value = _parse_json(text)
        except ValueError as exc:
            return None, f"not JSON ({exc})"
        errors = list(validator.iter_errors(value))
        if errors:
            return value, "; ".join(e.message for e in errors[:5])
        return value, None
