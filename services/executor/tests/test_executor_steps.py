"""Step records: one row per record (O(1) writes), the output size cap, the default timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from autom.executor.domain.limits import MAX_OUTPUT_BYTES
from autom.executor.domain.policy import DEFAULT_STEP_TIMEOUT_SECONDS, step_timeout
from autom.executor.settings import ExecutorSettings

Harness = Any

# Records every row version written to executor.runs (and executor.run_steps, where it exists)
# with its size, so a test can see what each step write touched.
_WRITE_LOG = """
CREATE TABLE public.write_log (
    n bigserial PRIMARY KEY, tbl text, op text, run_id text, bytes integer
);
CREATE FUNCTION public.log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.write_log (tbl, op, run_id, bytes)
    VALUES (TG_TABLE_NAME, TG_OP,
            coalesce(to_jsonb(NEW)->>'run_id', to_jsonb(NEW)->>'id'),
            octet_length(NEW::text));
    RETURN NEW;
END $$;
CREATE TRIGGER log_runs AFTER INSERT OR UPDATE ON executor.runs
    FOR EACH ROW EXECUTE FUNCTION public.log_write();
DO $$ BEGIN
    IF to_regclass('executor.run_steps') IS NOT NULL THEN
        CREATE TRIGGER log_run_steps AFTER INSERT OR UPDATE ON executor.run_steps
            FOR EACH ROW EXECUTE FUNCTION public.log_write();
    END IF;
END $$;
"""


def plan(*steps: dict[str, Any], **execution: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": "t", "plan": list(steps)}
    if execution:
        definition["execution"] = execution
    return definition


def steps_of(row: Any) -> dict[str, dict[str, Any]]:
    return {r["step_id"]: r for r in row.steps}


async def test_each_step_write_inserts_one_row_and_never_rewrites_earlier_records(
    harness: Harness,
) -> None:
    await harness.store.pool.execute(_WRITE_LOG)
    n = 100
    row = await harness.run(
        plan(
            *(
                {"id": f"s{i}", "action": "transform", "params": {"output": "{{ 'x' * 2000 }}"}}
                for i in range(n)
            )
        )
    )
    assert row.status == "succeeded"
    log = await harness.store.pool.fetch(
        "SELECT tbl, op, bytes FROM public.write_log WHERE run_id = $1 ORDER BY n", row.id
    )
    run_writes = [r["bytes"] for r in log if r["tbl"] == "runs"]
    # Every step write touched the runs row, but only its fixed-size columns: the last version
    # is no larger than the first, although 100 records of ~4 KB each were written meanwhile.
    assert len(run_writes) >= n
    assert max(run_writes) < 4096, max(run_writes)
    step_writes = [(r["op"], r["bytes"]) for r in log if r["tbl"] == "run_steps"]
    assert [op for op, _ in step_writes] == ["INSERT"] * n
    # Each insert carries one record, whatever the number of records before it.
    assert max(b for _, b in step_writes) < 3 * min(b for _, b in step_writes)
    records = row.steps
    assert [r["seq"] for r in records] == list(range(1, n + 1))
    assert [r["step_id"] for r in records] == [f"s{i}" for i in range(n)]
    assert all(r["output"] == "x" * 2000 for r in records)


async def test_resume_reads_the_records_of_the_steps_table(harness: Harness) -> None:
    snapshot = harness.automation(
        plan(
            {"id": "a", "action": "transform", "params": {"output": "{{ run.attempt }}"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ steps.a.output }}-b"}},
        )
    )
    new = harness.new_run(snapshot)
    first = await harness.claim(new)
    record = {"step_id": "a", "action": "transform", "phase": "plan", "status": "succeeded"}
    assert await harness.store.write(first.run_id, first.token, steps=[{**record, "output": 7}])
    # The first worker is gone: its lease expires and a second claim resumes at step b.
    await harness.store.pool.execute(
        "UPDATE executor.runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        first.run_id,
    )
    second = await harness.claim(new)
    assert [r["step_id"] for r in second.row.steps] == ["a"]
    await harness.engine.execute(second, pending_events=[])
    row = await harness.store.get(first.run_id)
    assert row.status == "succeeded"
    assert [(r["seq"], r["step_id"]) for r in row.steps] == [(1, "a"), (2, "b")]
    assert steps_of(row)["b"]["output"] == "7-b"


async def test_an_output_above_the_cap_is_recorded_as_a_marked_truncation(
    harness: Harness,
) -> None:
    h = harness.configured(max_output_bytes=2048)
    row = await h.run(
        plan(
            {"id": "big", "action": "transform", "params": {"output": "{{ 'y' * 5000 }}"}},
            # Later steps of the same run see the whole value; only the record is capped.
            {
                "id": "len",
                "action": "transform",
                "params": {"output": "{{ steps.big.output | length }}"},
            },
        )
    )
    assert row.status == "succeeded"
    big = steps_of(row)["big"]
    assert big["output_truncated"] is True
    assert big["output_size_bytes"] == 5002  # the JSON string, quotes included
    marker = big["output"]
    assert marker["truncated"] is True
    assert marker["size_bytes"] == 5002 and marker["limit_bytes"] == 2048
    assert marker["preview"].startswith('"yyyy') and len(marker["preview"]) <= 2048
    # The rendered params carried the same text: capped the same way.
    assert big["params_truncated"] is True and big["params"]["truncated"] is True
    small = steps_of(row)["len"]
    assert small["output"] == 5000
    assert small["output_truncated"] is False and "output_size_bytes" not in small
    stored = await h.store.pool.fetchval(
        "SELECT max(octet_length(output::text)) FROM executor.run_steps WHERE run_id = $1",
        row.id,
    )
    assert stored <= 2048


async def test_a_truncated_record_copied_into_a_retry_keeps_its_mark(harness: Harness) -> None:
    h = harness.configured(max_output_bytes=1024)
    row = await h.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": "{{ 'z' * 3000 }}"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ inputs.nope.x }}"}},
        )
    )
    assert row.status == "failed"
    kept = [r for r in row.steps if r["step_id"] == "a"]
    retry = h.new_run(await h.definitions.get(row.automation_id, row.automation_version))
    retry.steps = kept
    created, inserted = await h.store.create_pending(retry, [])
    assert inserted
    (copied,) = (await h.store.get(created.id)).steps
    assert copied["output_truncated"] is True and copied["output_size_bytes"] == 3002
    assert copied["output"] == kept[0]["output"]


def test_the_cap_and_the_default_timeout_are_settings() -> None:
    settings = ExecutorSettings(auth_public_keys="MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI")
    assert settings.max_output_bytes == MAX_OUTPUT_BYTES == 256 * 1024
    assert settings.default_step_timeout_seconds == DEFAULT_STEP_TIMEOUT_SECONDS == 300.0
    env = ExecutorSettings.model_validate(
        {
            "AUTOM_EXECUTOR_MAX_OUTPUT_BYTES": "4096",
            "AUTOM_EXECUTOR_DEFAULT_STEP_TIMEOUT_SECONDS": "30",
            "auth_public_keys": "MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI",
        }
    )
    assert env.max_output_bytes == 4096 and env.default_step_timeout_seconds == 30.0


def test_step_timeout_falls_back_to_the_default_last() -> None:
    assert step_timeout({}, {}, 300.0) == 300.0
    assert step_timeout({"step_timeout": "20s"}, {}, 300.0) == 20.0
    assert step_timeout({"step_timeout": "20s"}, {"timeout": "2s"}, 300.0) == 2.0
    assert step_timeout({}, {}) is None


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a stuck peer)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_the_default_step_timeout_bounds_a_step_without_one(
    harness: Harness, silent_server: int
) -> None:
    h = harness.configured(default_step_timeout_seconds=0.5)
    row = await h.run(
        plan(
            {
                "id": "stuck",
                "action": "http_request",
                # The request's own timeout is far longer than the default step timeout.
                "params": {"url": f"http://127.0.0.1:{silent_server}/", "timeout": "10s"},
            }
        )
    )
    assert row.status == "failed"
    stuck = steps_of(row)["stuck"]
    assert stuck["status"] == "timed_out"
    assert stuck["error"]["type"] == "StepTimeout"
    assert "0.5s" in stuck["error"]["message"]


async def test_wait_and_an_explicit_step_timeout_are_not_cut_by_the_default(
    harness: Harness,
) -> None:
    h = harness.configured(default_step_timeout_seconds=0.2)
    row = await h.run(
        plan(
            {"id": "w", "action": "wait", "params": {"duration": "600ms"}},
            {
                "id": "e",
                "action": "emit_event",
                "params": {"subject": "x", "data": 1},
                "timeout": "5s",
            },
        )
    )
    w, e = steps_of(row)["w"], steps_of(row)["e"]
    assert w["status"] == "succeeded", w
    # No bus in the harness: emit_event fails at once, not by the (explicit) timeout.
    assert e["error"]["type"] == "Unavailable", e
    assert json.dumps(row.steps)
