"""agent_task: litellm completions with a tool loop, optional output_schema with one repair
round, cost checked against the run budget before each call."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from opentelemetry.trace import SpanKind

from autom.core import metrics, tracing
from autom.core.jsonschemas import offline_validator, unresolvable_refs
from autom.core.registry import DEFAULT_MAX_TOOL_CALLS
from autom.executor.actions.base import ActionContext
from autom.executor.actions.tools import Tool, ToolArgumentsInvalid, Toolbox
from autom.executor.domain.limits import MAX_TOOL_RESULT_BYTES, cap
from autom.executor.errors import BudgetExceeded, LeaseLost, StepError

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class ToolCallLimit(StepError):
    """The model asked for more tool calls than max_tool_calls allows."""

    type_name = "ToolCallLimit"
    default_retryable = False


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


@dataclass
class _Reply:
    """One model answer: its text and the tool calls it asks for."""

    text: str
    tool_calls: list[Any]


class AgentTask:
    """Calls litellm with the deployment's endpoint; records usage and cost on the context."""

    def __init__(
        self,
        *,
        default_model: str,
        api_base: str | None,
        api_key: str | None,
        timeout: float,
        toolbox: Toolbox | None = None,
    ) -> None:
        self._default_model = default_model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout = timeout
        self._toolbox = toolbox or Toolbox({})

    @staticmethod
    def _estimate(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> float:
        """What the next call costs at least: its prompt, and max_tokens of answer if set."""
        litellm = _litellm()
        try:
            prompt = int(litellm.token_counter(model=model, messages=messages))
            answer = int(params.get("max_tokens") or 0)
            cost_in, cost_out = litellm.cost_per_token(
                model=model, prompt_tokens=prompt, completion_tokens=answer
            )
            return float(cost_in) + float(cost_out)
        except Exception:
            # Unknown models have no price: only the spend already recorded counts.
            return 0.0

    def _check_budget(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], ctx: ActionContext
    ) -> None:
        """Stop before a call that would pass execution.budget_usd (it never goes out)."""
        limit = ctx.budget.limit_usd
        if limit is None:
            return
        spent = ctx.budget.spent_usd + ctx.cost_usd
        if spent >= limit:
            raise BudgetExceeded(f"LLM budget of ${limit:.6f} is spent (${spent:.6f})")
        estimate = self._estimate(model, messages, params)
        if spent + estimate > limit:
            raise BudgetExceeded(
                f"the next LLM call (at least ${estimate:.6f}) would pass the run budget of "
                f"${limit:.6f} (${spent:.6f} spent)"
            )

    async def _complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        ctx: ActionContext,
        calls: list[dict[str, Any]],
        tools: Sequence[Tool] = (),
    ) -> _Reply:
        litellm = _litellm()

        self._check_budget(model, messages, params, ctx)
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": self._timeout}
        if params.get("temperature") is not None:
            kwargs["temperature"] = params["temperature"]
        if params.get("max_tokens") is not None:
            kwargs["max_tokens"] = params["max_tokens"]
        if tools:
            kwargs["tools"] = [t.spec() for t in tools]
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        with tracing.span(
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
        calls.append({**counted, "cost_usd": cost})
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
                f"LLM spend ${ctx.budget.spent_usd + ctx.cost_usd:.6f} exceeds the run budget "
                f"of ${limit:.6f}"
            )
        message = response.choices[0].message
        content = message.content
        return _Reply(
            content if isinstance(content, str) else "",
            list(getattr(message, "tool_calls", None) or []),
        )

    async def __call__(self, params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        model = str(params.get("model") or self._default_model)
        tools = await self._toolbox.resolve(list(params.get("tools") or []), ctx)
        schema = params.get("output_schema")
        messages: list[dict[str, Any]] = []
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
        calls: list[dict[str, Any]] = []
        if tools:
            loop = _ToolLoop(tools, int(params.get("max_tool_calls") or DEFAULT_MAX_TOOL_CALLS))
            text = await loop.run(self, model, messages, params, ctx, calls)
        else:
            text = (await self._complete(model, messages, params, ctx, calls)).text
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
                text = (await self._complete(model, messages, params, ctx, calls)).text
                output["text"] = text
                value, problem = self._check(text, validator)
                if problem is not None:
                    raise OutputSchemaError(f"model output does not match output_schema: {problem}")
            output["json"] = value
        output["usage"] = dict(ctx.usage)
        output["cost_usd"] = ctx.cost_usd
        if tools:
            output["llm_calls"] = calls
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


class _ToolLoop:
    """model -> tool calls -> results -> model, until an answer without tool calls.

    Tool results go back to the model as JSON data: never rendered as templates, never able to
    change the tool list. Each call is recorded before and after it runs; a resumed step reuses
    the result of a call that completed with the same tool and arguments.
    """

    def __init__(self, tools: list[Tool], max_calls: int) -> None:
        self._by_function = {t.function: t for t in tools}
        self._tools = tools
        self._max = max_calls
        self._n = 0

    async def run(
        self,
        agent: AgentTask,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        ctx: ActionContext,
        calls: list[dict[str, Any]],
    ) -> str:
        done = await ctx.tool_calls.completed() if ctx.tool_calls is not None else {}
        while True:
            reply = await agent._complete(model, messages, params, ctx, calls, self._tools)
            if not reply.tool_calls:
                return reply.text
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {
                                "name": c.function.name,
                                "arguments": c.function.arguments or "{}",
                            },
                        }
                        for c in reply.tool_calls
                    ],
                }
            )
            for call in reply.tool_calls:
                self._n += 1
                if self._n > self._max:
                    raise ToolCallLimit(
                        f"the model asked for more than {self._max} tool calls (max_tool_calls)"
                    )
                content = await self._one(call, ctx, done)
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "name": call.function.name,
                        "content": json.dumps(content, ensure_ascii=False),
                    }
                )

    async def _one(self, call: Any, ctx: ActionContext, done: dict[int, dict[str, Any]]) -> Any:
        """Run (or reuse) one call; what the model is shown: the result or the error."""
        n, log = self._n, ctx.tool_calls
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = call.function.arguments
        recorded = ctx.redact(arguments)
        tool = self._by_function.get(call.function.name)
        if tool is None:
            error = StepError(
                f"tool {call.function.name!r} is not declared by this step; it was not called",
                retryable=False,
                type_name="ToolNotDeclared",
            ).detail()
            if log is not None:
                name = str(call.function.name)[:200]
                await log.finish(n, "refused", None, error, name=name, arguments=recorded)
            return {"error": error}
        previous = done.get(n)
        if (
            previous is not None
            and previous["name"] == tool.declared
            and previous["arguments"] == recorded
        ):
            # Completed before a crash or a retry: the tool is not called again.
            return {"result": previous["result"]}
        if log is not None:
            await log.begin(n, tool.declared, recorded)
        try:
            if not isinstance(arguments, dict):
                raise ToolArgumentsInvalid("arguments are not a JSON object")
            tool.check(arguments)
            result = await tool.call(arguments, replace(ctx, call_n=n, cost_usd=0.0, usage={}))
        except (LeaseLost, BudgetExceeded):
            raise
        except Exception as exc:
            error = (exc if isinstance(exc, StepError) else StepError(str(exc))).detail()
            error = ctx.redact(error)
            if log is not None:
                await log.finish(n, "failed", None, error)
            return {"error": error}
        shown = cap(ctx.redact(result), MAX_TOOL_RESULT_BYTES).value
        if log is not None:
            await log.finish(n, "succeeded", shown, None)
        return {"result": shown}
