"""Run and step records as protos: the per-stream cache of converted step records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autom.executor.convert import run_to_proto
from autom.executor.store import RunRow


def record(seq: int, step_id: str, output: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "step_id": step_id,
        "action": "transform",
        "phase": "plan",
        "status": "succeeded",
        "attempts": 1,
        "started_at": "2026-12-01T10:00:00+00:00",
        "finished_at": "2026-12-01T10:00:01+00:00",
        "params": {"output": output},
        "output": output,
    }


def test_each_step_record_is_converted_once_and_the_run_reads_the_same() -> None:
    converted: dict[int, Any] = {}
    first = RunRow(
        id="r",
        fire_id="f",
        workspace_id="w",
        automation_id="a",
        status="running",
        steps=[record(1, "a", 1)],
    )
    assert run_to_proto(first, converted=converted) == run_to_proto(first)
    # A resumed step's second record replaces its first in the run, as without the cache.
    later = replace(
        first, status="succeeded", steps=[record(1, "a", 1), record(2, "b", 2), record(3, "a", 3)]
    )
    cached = run_to_proto(later, converted=converted)
    assert cached == run_to_proto(later)
    assert [(s.step_id, s.output.number_value) for s in cached.steps] == [("a", 3), ("b", 2)]
    assert sorted(converted) == [1, 2, 3]
    # The protos kept are copied into each run, never changed by it.
    cached.steps[0].step_id = "changed"
    assert converted[3].step_id == "a"
