"""automation revision; trigger-level overlap moved to execution.concurrency

Revision ID: 0002_definitions
Revises: 0001_definitions
Create Date: 2026-11-30 23:45:00

Schema: adds the sequence `definitions.automation_revisions` and the column
`automations.revision` (bigint, NOT NULL, default nextval of that sequence). Existing rows
each get a distinct revision from the sequence as the column is added.

Data: for every automation (deleted ones included) whose latest version's definition has a
trigger with `config.overlap`, it sets `execution.concurrency` to `skip` if any trigger said
`skip` and to `allow` otherwise, but only when `execution.concurrency` is unset (an explicit
`execution.concurrency` always wins: it is what the executor has been obeying); then it
removes `overlap` from every trigger config of that definition. It rewrites the same
definition in `automations.definition` and in the `automation_versions` row of the latest
version, so both stay identical; older versions are left as written (they are immutable and
the executor never read `overlap`). Neither `version` nor `revision` changes and no event is
published: the schedules the scheduler derives from these definitions do not change.

Downgrade drops the column and the sequence; the overlap rewrite is not undone (the removed
setting never had an effect).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_definitions"
down_revision = "0001_definitions"
branch_labels = None
depends_on = None

SCHEMA = "definitions"


def _migrated(definition: dict[str, Any]) -> dict[str, Any] | None:
    """The definition with trigger overlap moved to execution.concurrency; None if none."""
    triggers = definition.get("triggers")
    if not isinstance(triggers, list):
        return None
    values = [
        t["config"]["overlap"]
        for t in triggers
        if isinstance(t, dict) and isinstance(t.get("config"), dict) and "overlap" in t["config"]
    ]
    if not values:
        return None
    out = dict(definition)
    out["triggers"] = [
        {**t, "config": {k: v for k, v in t["config"].items() if k != "overlap"}}
        if isinstance(t, dict) and isinstance(t.get("config"), dict)
        else t
        for t in triggers
    ]
    execution = out.get("execution")
    execution = dict(execution) if isinstance(execution, dict) else {}
    if not execution.get("concurrency"):
        execution["concurrency"] = "skip" if "skip" in values else "allow"
    out["execution"] = execution
    return out


def upgrade() -> None:
    op.execute(sa.text(f"CREATE SEQUENCE {SCHEMA}.automation_revisions"))
    op.add_column(
        "automations",
        sa.Column(
            "revision",
            sa.BigInteger(),
            server_default=sa.text(f"nextval('{SCHEMA}.automation_revisions')"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            f"SELECT id, version, definition FROM {SCHEMA}.automations "
            "WHERE jsonb_path_exists(definition, '$.triggers[*].config.overlap')"
        )
    ).all()
    for row in rows:
        migrated = _migrated(row.definition)
        if migrated is None:
            continue
        params = {"id": row.id, "version": row.version, "d": json.dumps(migrated)}
        conn.execute(
            sa.text(
                f"UPDATE {SCHEMA}.automations SET definition = CAST(:d AS jsonb) WHERE id = :id"
            ),
            params,
        )
        conn.execute(
            sa.text(
                f"UPDATE {SCHEMA}.automation_versions SET definition = CAST(:d AS jsonb) "
                "WHERE automation_id = :id AND version = :version"
            ),
            params,
        )


def downgrade() -> None:
    op.drop_column("automations", "revision", schema=SCHEMA)
    op.execute(sa.text(f"DROP SEQUENCE {SCHEMA}.automation_revisions"))
