"""Run rows and step records -> protobuf."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from autom.api.common.v1 import catalog_pb2
from autom.api.executor.v1 import executor_pb2 as pb
from autom.core.protoconv import dict_to_struct, py_to_value, to_timestamp
from autom.executor.actions.base import Action
from autom.executor.store import RunRow

RUN_STATUS = {
    "pending": pb.RUN_STATUS_PENDING,
    "running": pb.RUN_STATUS_RUNNING,
    "succeeded": pb.RUN_STATUS_SUCCEEDED,
    "failed": pb.RUN_STATUS_FAILED,
    "cancelled": pb.RUN_STATUS_CANCELLED,
    "timed_out": pb.RUN_STATUS_TIMED_OUT,
    "skipped": pb.RUN_STATUS_SKIPPED,
}
RUN_STATUS_NAME = {v: k for k, v in RUN_STATUS.items()}
STEP_STATUS = {
    "pending": pb.STEP_STATUS_PENDING,
    "running": pb.STEP_STATUS_RUNNING,
    "succeeded": pb.STEP_STATUS_SUCCEEDED,
    "failed": pb.STEP_STATUS_FAILED,
    "skipped": pb.STEP_STATUS_SKIPPED,
    "cancelled": pb.STEP_STATUS_CANCELLED,
    "timed_out": pb.STEP_STATUS_TIMED_OUT,
}


def latest_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (phase, step): the last one written, in first-seen order.

    A resumed run re-executes its unfinished step, which appends a second record.
    """
    order: list[tuple[str, str]] = []
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key = (record.get("phase", "plan"), record.get("step_id", ""))
        if key not in last:
            order.append(key)
        last[key] = record
    plan = [last[k] for k in order if k[0] == "plan"]
    return plan + [last[k] for k in order if k[0] != "plan"]


def error_to_proto(error: dict[str, Any] | None) -> pb.ErrorDetail | None:
    """ErrorDetail from its JSON form."""
    if not error:
        return None
    return pb.ErrorDetail(
        type=str(error.get("type", "")),
        message=str(error.get("message", "")),
        retryable=bool(error.get("retryable", False)),
        fields=[str(f) for f in error.get("fields") or []],
    )


def _ts(value: str | datetime | None) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return to_timestamp(value)


def tool_call_to_proto(call: dict[str, Any]) -> pb.ToolCall:
    """ToolCall from a tool-call row."""
    started, finished = call.get("started_at"), call.get("finished_at")
    duration = 0
    if started and finished:
        delta = datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
        duration = max(0, round(delta.total_seconds() * 1000))
    out = pb.ToolCall(
        call_n=int(call.get("call_n") or 0),
        name=str(call.get("name", "")),
        status=str(call.get("status", "")),
        attempt=int(call.get("attempt") or 0),
        result_truncated=bool(call.get("result_truncated")),
        error=error_to_proto(call.get("error")),
        start_time=_ts(started),
        finish_time=_ts(finished),
        duration_ms=duration,
    )
    if call.get("arguments") is not None:
        out.arguments.CopyFrom(py_to_value(call["arguments"]))
    if call.get("result") is not None:
        out.result.CopyFrom(py_to_value(call["result"]))
    return out


def step_to_proto(record: dict[str, Any]) -> pb.StepRun:
    """StepRun from a step record."""
    step = pb.StepRun(
        step_id=record.get("step_id", ""),
        action=record.get("action", ""),
        status=STEP_STATUS.get(record.get("status", ""), pb.STEP_STATUS_UNSPECIFIED),
        attempts=int(record.get("attempts", 0)),
        start_time=_ts(record.get("started_at")),
        finish_time=_ts(record.get("finished_at")),
        error=error_to_proto(record.get("error")),
        phase=record.get("phase", "plan"),
        cost_usd=float(record.get("cost_usd") or 0.0),
        replayed=bool(record.get("replayed")),
        tool_calls=[tool_call_to_proto(c) for c in record.get("tool_calls") or []],
    )
    if record.get("params") is not None:
        step.params.CopyFrom(py_to_value(record["params"]))
    if record.get("output") is not None:
        step.output.CopyFrom(py_to_value(record["output"]))
    return step


def step_proto(record: dict[str, Any], converted: dict[int, pb.StepRun] | None) -> pb.StepRun:
    """`step_to_proto`, kept in `converted` by seq: a written record never changes."""
    seq = int(record.get("seq") or 0)
    if converted is None or not seq:
        return step_to_proto(record)
    found = converted.get(seq)
    if found is None:
        found = converted[seq] = step_to_proto(record)
    return found


def run_to_proto(
    row: RunRow, *, with_steps: bool = True, converted: dict[int, pb.StepRun] | None = None
) -> pb.Run:
    """Run from a runs row (its step records taken from `converted` where already there)."""
    run = pb.Run(
        id=row.id,
        fire_id=row.fire_id,
        workspace_id=row.workspace_id,
        automation_id=row.automation_id,
        automation_version=row.automation_version,
        trigger_type=row.trigger_type,
        trigger_id=row.trigger_id,
        status=RUN_STATUS.get(row.status, pb.RUN_STATUS_UNSPECIFIED),
        inputs=dict_to_struct(row.inputs) if row.inputs else None,
        scheduled_for=to_timestamp(row.scheduled_for),
        fired_time=to_timestamp(row.fired_at),
        create_time=to_timestamp(row.created_at),
        start_time=to_timestamp(row.started_at),
        finish_time=to_timestamp(row.finished_at),
        error=error_to_proto(row.error),
        retry_of_run_id=row.retry_of_run_id,
        principal=row.principal,
        cost_usd=float(row.cost_usd or 0.0),
        attempt=row.attempt,
        cause=dict_to_struct(row.cause) if row.cause else None,
        upstream_run_id=row.upstream_run_id,
        chain_depth=row.chain_depth,
        note=row.note,
    )
    if with_steps:
        records = latest_records(list(row.steps or []))
        run.steps.extend(step_proto(r, converted) for r in records)
    return run


def action_to_proto(action: Action) -> catalog_pb2.ActionType:
    """Catalog entry of an action the executor runs."""
    spec = action.spec
    return catalog_pb2.ActionType(
        type=spec.type,
        description=spec.description,
        params_schema=dict_to_struct(spec.params_schema),
        output_schema=dict_to_struct(spec.output_schema),
        side_effects=spec.side_effects,
    )
