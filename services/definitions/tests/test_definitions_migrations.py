"""Data migrations of the definitions schema, run for real from the previous revision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from autom.core.db import create_engine
from autom.definitions import db


def _definition(overlap: str | None, concurrency: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"cron": "0 9 * * *"}
    if overlap is not None:
        config["overlap"] = overlap
    raw: dict[str, Any] = {
        "name": "n",
        "triggers": [{"type": "schedule", "config": config}],
        "plan": [{"id": "a", "action": "log", "params": {"message": "hi"}}],
    }
    if concurrency is not None:
        raw["execution"] = {"concurrency": concurrency}
    return raw


async def test_trigger_overlap_moves_to_execution_concurrency_and_revisions_are_assigned(
    database_url: str,
) -> None:
    engine = create_engine(url=database_url, application_name="definitions-migration-test")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA {db.SCHEMA} CASCADE"))
        await db.migrate_to(database_url, "0001_definitions")
        now = datetime.now(UTC)
        cases = {
            "moved": (_definition("allow", None), 2),
            "kept": (_definition("allow", "buffer_all"), 1),
            "plain": (_definition(None, None), 1),
        }
        async with engine.begin() as conn:
            for aid, (raw, version) in cases.items():
                await conn.execute(
                    sa.text(
                        "INSERT INTO definitions.automations (id, workspace_id, name, status,"
                        " version, definition, created_by, created_at, updated_at) VALUES"
                        " (:id, 'w', :id, 'active', :v, CAST(:d AS jsonb), 'u', :t, :t)"
                    ),
                    {"id": aid, "v": version, "d": json.dumps(raw), "t": now},
                )
                for v in range(1, version + 1):
                    await conn.execute(
                        sa.text(
                            "INSERT INTO definitions.automation_versions (automation_id, version,"
                            " definition, created_by, created_at)"
                            " VALUES (:id, :v, CAST(:d AS jsonb), 'u', :t)"
                        ),
                        {"id": aid, "v": v, "d": json.dumps(raw), "t": now},
                    )
        await db.migrate(database_url)
        async with engine.connect() as conn:
            rows = {r.id: r for r in (await conn.execute(sa.select(*db.automations.c))).all()}
            versions = {
                (r.automation_id, r.version): r.definition
                for r in (await conn.execute(sa.select(*db.automation_versions.c))).all()
            }
    finally:
        await engine.dispose()
    moved = rows["moved"].definition
    assert moved["execution"] == {"concurrency": "allow"}
    assert moved["triggers"][0]["config"] == {"cron": "0 9 * * *"}
    assert versions[("moved", 2)] == moved
    assert versions[("moved", 1)] == cases["moved"][0]  # older versions stay as written
    kept = rows["kept"].definition
    assert kept["execution"] == {"concurrency": "buffer_all"}
    assert "overlap" not in kept["triggers"][0]["config"]
    assert rows["plain"].definition == cases["plain"][0]
    assert len({r.revision for r in rows.values()}) == 3
