"""run steps table: one row per step record instead of a JSONB array on the run

Revision ID: 0003_executor_run_steps
Revises: 0002_executor_recovery
Create Date: 2026-11-30 23:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_executor_run_steps"
down_revision = "0002_executor_recovery"
branch_labels = None
depends_on = None

_COPY_IN = """
INSERT INTO executor.run_steps
    (run_id, seq, step_id, action, phase, status, attempts, started_at, finished_at,
     params, output, error, cost_usd, usage, extra)
SELECT r.id,
       e.n,
       coalesce(e.rec->>'step_id', ''),
       coalesce(e.rec->>'action', ''),
       coalesce(e.rec->>'phase', 'plan'),
       coalesce(e.rec->>'status', ''),
       coalesce((e.rec->>'attempts')::integer, 0),
       (e.rec->>'started_at')::timestamptz,
       (e.rec->>'finished_at')::timestamptz,
       nullif(e.rec->'params', 'null'::jsonb),
       nullif(e.rec->'output', 'null'::jsonb),
       nullif(e.rec->'error', 'null'::jsonb),
       coalesce((e.rec->>'cost_usd')::double precision, 0),
       nullif(e.rec->'usage', 'null'::jsonb),
       nullif(e.rec - ARRAY['step_id', 'action', 'phase', 'status', 'attempts', 'started_at',
                           'finished_at', 'params', 'output', 'error', 'cost_usd', 'usage'],
              '{}'::jsonb)
  FROM executor.runs AS r,
       jsonb_array_elements(r.steps) WITH ORDINALITY AS e(rec, n)
"""

# Truncated values keep their marker in params/output; the flags fold back into the record.
_COPY_OUT = """
UPDATE executor.runs AS r
   SET steps = s.records
  FROM (SELECT run_id,
               jsonb_agg(
                   coalesce(extra, '{}'::jsonb) || jsonb_build_object(
                       'step_id', step_id, 'action', action, 'phase', phase,
                       'status', status, 'attempts', attempts,
                       'started_at', started_at, 'finished_at', finished_at,
                       'params', params, 'output', output, 'error', error,
                       'cost_usd', cost_usd)
                   || CASE WHEN usage IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('usage', usage) END
                   ORDER BY seq) AS records
          FROM executor.run_steps GROUP BY run_id) AS s
 WHERE r.id = s.run_id
"""


def upgrade() -> None:
    op.create_table(
        "run_steps",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=128), server_default="", nullable=False),
        sa.Column("phase", sa.String(length=16), server_default="plan", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("cost_usd", sa.Double(), server_default="0", nullable=False),
        sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "params_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("params_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column(
            "output_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("output_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["executor.runs.id"],
            name=op.f("fk_run_steps_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_steps")),
        schema="executor",
    )
    op.execute(_COPY_IN)
    op.drop_column("runs", "steps", schema="executor")


def downgrade() -> None:
    op.add_column(
        "runs",
        sa.Column(
            "steps",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema="executor",
    )
    op.execute(_COPY_OUT)
    op.drop_table("run_steps", schema="executor")
