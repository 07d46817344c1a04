"""The run_steps migration moves the JSONB step records of existing runs over, and back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config

from autom.core.db import asyncpg_url, create_engine
from autom.executor import db
from autom.executor.store import RunStore, create_pool

SCRIPTS = Path(db.__file__).parent / "migrations"
BEFORE = "0002_executor_recovery"
RECORDS: list[dict[str, Any]] = [
    {
        "step_id": "a",
        "action": "transform",
        "phase": "plan",
        "status": "succeeded",
        "attempts": 1,
        "started_at": "2026-11-01T10:00:00+00:00",
        "finished_at": "2026-11-01T10:00:01+00:00",
        "params": {"output": 1},
        "output": {"n": 1},
        "error": None,
        "cost_usd": 0.25,
        "usage": {"prompt_tokens": 3},
        "custom": "kept",
    },
    {
        "step_id": "b",
        "action": "http_request",
        "phase": "on_failure",
        "status": "failed",
        "attempts": 2,
        "started_at": "2026-11-01T10:00:02+00:00",
        "finished_at": None,
        "params": None,
        "output": None,
        "error": {"type": "HttpError", "message": "boom", "retryable": True, "fields": []},
        "cost_usd": 0,
    },
]


def _alembic(url: str, verb: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["database_url"] = asyncpg_url(url)
    cfg.attributes["schema"] = db.SCHEMA
    getattr(command, verb)(cfg, revision)


@pytest.fixture
async def empty_database(pg_server_url: str) -> AsyncIterator[str]:
    name = f"autom_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    # Timestamps folded back into JSON are rendered in the session time zone.
    await admin.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'UTC'")
    url = f"{pg_server_url.rpartition('/')[0]}/{name}"
    yield url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_upgrade_moves_records_to_run_steps_and_downgrade_brings_them_back(
    empty_database: str,
) -> None:
    url = empty_database
    await asyncio.to_thread(_alembic, url, "upgrade", BEFORE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO executor.runs (id, fire_id, workspace_id, automation_id, trigger_type, "
            "status, created_at, steps) VALUES "
            "('r1', 'f1', 'ws', 'a1', 'schedule', 'failed', now(), $1::jsonb), "
            "('r2', 'f2', 'ws', 'a1', 'schedule', 'pending', now(), '[]'::jsonb)",
            json.dumps(RECORDS),
        )
        await asyncio.to_thread(_alembic, url, "upgrade", "head")
        engine = create_engine(url=url, application_name="migration-test")
        pool = await create_pool(url, size=2, application_name="migration-test")
        try:
            store = RunStore(engine, pool)
            run = await store.get("r1")
            assert run is not None
            assert [r["seq"] for r in run.steps] == [1, 2]
            a, b = run.steps
            assert {k: a[k] for k in RECORDS[0]} == RECORDS[0]
            assert {k: b[k] for k in RECORDS[1]} == RECORDS[1]
            empty = await store.get("r2")
            assert empty is not None and empty.steps == []
        finally:
            await pool.close()
            await engine.dispose()
        await asyncio.to_thread(_alembic, url, "downgrade", BEFORE)
        back = json.loads(await conn.fetchval("SELECT steps FROM executor.runs WHERE id = 'r1'"))
        assert [{k: r[k] for k in RECORDS[i]} for i, r in enumerate(back)] == [
            {**rec, "cost_usd": float(rec["cost_usd"])} for rec in RECORDS
        ]
        assert await conn.fetchval("SELECT steps FROM executor.runs WHERE id = 'r2'") == "[]"
    finally:
        await conn.close()
