"""SQL of the executor: each state change is one statement, compare-and-set on the lease.

The statements of the run hot path (claim, write, create_pending) issued by concurrent runs
share one transaction (group commit); each is still atomic and answers only once committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core.batch import Batcher
from autom.core.db import asyncpg_url
from autom.executor.domain.limits import MAX_OUTPUT_BYTES, MAX_TOOL_RESULT_BYTES, cap

# Statements of the run hot path committed together (one transaction, one WAL flush).
GROUP_MAX = 64

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@lru_cache(maxsize=256)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` placeholders -> `$n` (asyncpg), with the order of names."""
    names: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(sub, sql), tuple(names)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb parameters are passed as JSON text; results come back decoded.
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: v, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per statement on this pool).

    Every use of the pool is one statement (`pool.fetch`): no session setting, LISTEN, cursor
    or advisory lock outlives it, and asyncpg still rolls back a transaction left open.
    """


async def create_pool(url: str, *, size: int, application_name: str) -> asyncpg.Pool:
    """The asyncpg pool of the run hot path (plain statements, no per-checkout ping)."""
    dsn = asyncpg_url(url).replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": application_name},
    )
    assert pool is not None
    return pool


TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out", "skipped"})
ACTIVE = ("pending", "running")

_T = "executor.runs"
_S = "executor.run_steps"
_O = "executor.outbox"
_A = "executor.audit_outbox"
_RC = "executor.rate_counters"
_TC = "executor.tool_calls"
_TC_COLUMNS = (
    "step_id, call_n, name, status, attempt, arguments, result, result_truncated, error, "
    "started_at, finished_at"
)


@dataclass(frozen=True)
class Event:
    """One outbox row written with the change it announces."""

    subject: str
    msg_id: str
    payload: bytes


@dataclass
class NewRun:
    """Values of a run row created from a fire (or by StartRun / RetryRun before its fire)."""

    id: str
    fire_id: str
    workspace_id: str
    automation_id: str
    automation_version: int
    trigger_type: str
    trigger_id: str
    fire_inputs: dict[str, Any]
    scheduled_for: datetime | None
    fired_at: datetime | None
    last_fired_at: datetime | None
    principal: str
    retry_of_run_id: str = ""
    resume_from_step: str = ""
    inputs: dict[str, Any] | None = None
    steps: list[dict[str, Any]] | None = None
    cause: dict[str, Any] | None = None
    upstream_run_id: str = ""
    chain_depth: int = 0
    note: str = ""

    def params(self) -> dict[str, Any]:
        """Bind parameters of the insert."""
        return {
            "id": self.id,
            "fire_id": self.fire_id,
            "workspace_id": self.workspace_id,
            "automation_id": self.automation_id,
            "automation_version": self.automation_version,
            "trigger_type": self.trigger_type,
            "trigger_id": self.trigger_id,
            "fire_inputs": json.dumps(self.fire_inputs),
            "inputs": None if self.inputs is None else json.dumps(self.inputs),
            "scheduled_for": self.scheduled_for,
            "fired_at": self.fired_at,
            "last_fired_at": self.last_fired_at,
            "principal": self.principal,
            "retry_of_run_id": self.retry_of_run_id,
            "resume_from_step": self.resume_from_step,
            "cause": None if self.cause is None else json.dumps(self.cause),
            "upstream_run_id": self.upstream_run_id,
            "chain_depth": self.chain_depth,
            "note": self.note,
        }


_COLUMNS = (
    "id, fire_id, workspace_id, automation_id, automation_version, trigger_type, trigger_id, "
    "fire_inputs, inputs, scheduled_for, fired_at, last_fired_at, principal, "
    "retry_of_run_id, resume_from_step, cause, upstream_run_id, chain_depth, note"
)
_VALUES = (
    ":id, :fire_id, :workspace_id, :automation_id, :automation_version, :trigger_type, "
    ":trigger_id, CAST(:fire_inputs AS jsonb), CAST(:inputs AS jsonb), "
    ":scheduled_for, :fired_at, :last_fired_at, :principal, :retry_of_run_id, :resume_from_step, "
    "CAST(:cause AS jsonb), :upstream_run_id, :chain_depth, :note"
)

# Insert-or-claim in one statement: a new fire inserts a running run holding the lease; a
# redelivered fire takes the lease only from a pending run or a running one whose lease expired.
_CLAIM = f"""
    INSERT INTO {_T} AS r ({_COLUMNS}, status, created_at, started_at, attempt,
                             lease_token, lease_owner, lease_expires_at, buffered)
    VALUES ({_VALUES}, 'running', now(), greatest(now(), :start_at), 1,
            :token, :owner, now() + make_interval(secs => :lease), :hold)
    ON CONFLICT (fire_id) DO UPDATE
       SET status = 'running',
           started_at = coalesce(r.started_at, greatest(now(), :start_at)),
           -- A run waiting in a concurrency buffer is re-checked, not re-attempted.
           attempt = CASE WHEN r.buffered AND r.status = 'pending' AND r.attempt > 0
                          THEN r.attempt ELSE r.attempt + 1 END,
           lease_token = EXCLUDED.lease_token,
           lease_owner = EXCLUDED.lease_owner,
           lease_expires_at = EXCLUDED.lease_expires_at,
           -- A first claim under a concurrency policy waits for admission (buffered).
           buffered = CASE WHEN r.attempt = 0 THEN :hold ELSE r.buffered END
     WHERE r.status IN ('pending', 'running')
       AND (r.lease_token IS NULL OR r.lease_expires_at < now())
    RETURNING r.*, (xmax = 0) AS inserted,
              EXISTS (SELECT 1 FROM {_S} s WHERE s.run_id = r.id) AS has_steps
    """


def _events_cte(
    events: Sequence[Event], guard: str, *, table: str = _O, name: str = "ev"
) -> tuple[str, dict[str, Any]]:
    if not events:
        return "", {}
    rows = []
    params: dict[str, Any] = {}
    for i, event in enumerate(events):
        rows.append(f"(:{name}_s{i}, :{name}_m{i}, CAST(:{name}_p{i} AS bytea), now())")
        params.update(
            {
                f"{name}_s{i}": event.subject,
                f"{name}_m{i}": event.msg_id,
                f"{name}_p{i}": event.payload,
            }
        )
    sql = (
        f", {name} AS (INSERT INTO {table} (subject, msg_id, payload, created_at) "
        f"SELECT v.* FROM (VALUES {', '.join(rows)}) AS v(subject, msg_id, payload, created_at) "
        f"WHERE EXISTS (SELECT 1 FROM {guard}))"
    )
    return sql, params


@dataclass(frozen=True)
class RunRow:
    """One row of executor.runs (jsonb decoded), with the run's step records when read."""

    id: str
    fire_id: str
    workspace_id: str
    automation_id: str
    automation_version: int = 0
    trigger_type: str = ""
    trigger_id: str = ""
    status: str = ""
    fire_inputs: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    scheduled_for: datetime | None = None
    fired_at: datetime | None = None
    last_fired_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    retry_of_run_id: str = ""
    resume_from_step: str = ""
    principal: str = ""
    cost_usd: float = 0.0
    attempt: int = 0
    lease_token: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    cancel_reason: str = ""
    buffered: bool = False
    orphan_resumes: int = 0
    resumed_attempt: int = 0
    started_steps: tuple[str, ...] = ()
    # Why an event-triggered run started, the run that led to it and the chain's depth.
    cause: dict[str, Any] | None = None
    upstream_run_id: str = ""
    chain_depth: int = 0
    # A sentence about how the run started (e.g. by hand while its automation was paused).
    note: str = ""
    # Not columns: the step records (from executor.run_steps), whether a claim inserted the
    # row or found step records, and the database's clock when the row was read.
    steps: list[dict[str, Any]] = field(default_factory=list)
    inserted: bool = False
    has_steps: bool = True
    db_now: datetime | None = None

    @classmethod
    def from_db(cls, record: asyncpg.Record) -> RunRow:
        """The row as selected (columns this code does not know, e.g. newer ones, ignored)."""
        values = {k: v for k, v in record.items() if k in _RUN_FIELDS}
        if values.get("started_steps") is not None:
            values["started_steps"] = tuple(values["started_steps"])
        if values.get("steps") is None:
            values.pop("steps", None)
        return cls(**values)


_RUN_FIELDS = frozenset(f.name for f in fields(RunRow))


_STEP_TYPES = {
    "step_id": "text",
    "action": "text",
    "phase": "text",
    "status": "text",
    "attempts": "integer",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "params": "jsonb",
    "output": "jsonb",
    "error": "jsonb",
    "cost_usd": "double precision",
    "usage": "jsonb",
    "params_truncated": "boolean",
    "params_size_bytes": "bigint",
    "output_truncated": "boolean",
    "output_size_bytes": "bigint",
    "extra": "jsonb",
}
_STEP_KEYS = frozenset({"seq", *_STEP_TYPES}) - {"extra"}
_STEP_SELECT = f"SELECT seq, {', '.join(_STEP_TYPES)} FROM {_S}"


def _when(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass
class StepRow:
    """One row of executor.run_steps: a step record as stored."""

    step_id: str
    status: str
    action: str = ""
    phase: str = "plan"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    params: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    cost_usd: float = 0.0
    usage: dict[str, Any] | None = None
    params_truncated: bool = False
    params_size_bytes: int | None = None
    output_truncated: bool = False
    output_size_bytes: int | None = None
    # Record keys without a column of their own, kept as written.
    extra: dict[str, Any] = field(default_factory=dict)
    # Position in the run (from 1); assigned by the insert.
    seq: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any], max_bytes: int) -> StepRow:
        """The row of an engine record; params and output above `max_bytes` become markers."""
        values: dict[str, Any] = {}
        for name in ("params", "output"):
            if record.get(f"{name}_truncated"):
                # Already a marker (e.g. a record copied into a retry): keep it as it is.
                values[name] = record.get(name)
                values[f"{name}_truncated"] = True
                values[f"{name}_size_bytes"] = record.get(f"{name}_size_bytes")
                continue
            capped = cap(record.get(name), max_bytes)
            values[name] = capped.value
            values[f"{name}_truncated"] = capped.truncated
            values[f"{name}_size_bytes"] = capped.size_bytes
        return cls(
            step_id=str(record.get("step_id", "")),
            status=str(record.get("status", "")),
            action=str(record.get("action", "")),
            phase=str(record.get("phase", "plan")),
            attempts=int(record.get("attempts") or 0),
            started_at=_when(record.get("started_at")),
            finished_at=_when(record.get("finished_at")),
            error=record.get("error"),
            cost_usd=float(record.get("cost_usd") or 0.0),
            usage=record.get("usage"),
            extra={k: v for k, v in record.items() if k not in _STEP_KEYS},
            **values,
        )

    @classmethod
    def from_db(cls, record: asyncpg.Record) -> StepRow:
        """The row as selected by _STEP_SELECT."""
        values = dict(record.items())
        values["extra"] = values.get("extra") or {}
        return cls(**values)

    def to_record(self) -> dict[str, Any]:
        """The engine/API record (timestamps as ISO 8601 text)."""
        record: dict[str, Any] = {
            **self.extra,
            "seq": self.seq,
            "step_id": self.step_id,
            "action": self.action,
            "phase": self.phase,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "params": self.params,
            "output": self.output,
            "error": self.error,
            "cost_usd": self.cost_usd,
            "params_truncated": self.params_truncated,
            "output_truncated": self.output_truncated,
        }
        if self.usage is not None:
            record["usage"] = self.usage
        if self.params_truncated:
            record["params_size_bytes"] = self.params_size_bytes
        if self.output_truncated:
            record["output_size_bytes"] = self.output_size_bytes
        return record

    def bind(self, column: str) -> Any:
        """The bind value of one column (jsonb as JSON text)."""
        value = getattr(self, column)
        if column == "extra" and not value:
            return None
        if _STEP_TYPES[column] == "jsonb":
            return None if value is None else json.dumps(value)
        return value


def _steps_cte(rows: Sequence[StepRow], source: str) -> tuple[str, dict[str, Any]]:
    """`, st AS (INSERT ...)`: `rows` appended after the last seq of each run `source` returns.

    Writing a record inserts one row: the run's earlier records are not read nor rewritten.
    """
    if not rows:
        return "", {}
    cols = ", ".join(_STEP_TYPES)
    arrays = ", ".join(f"CAST(:st_{c} AS {t}[])" for c, t in _STEP_TYPES.items())
    sql = (
        f", st AS (INSERT INTO {_S} (run_id, seq, {cols}) "
        f"SELECT src.id, coalesce((SELECT max(seq) FROM {_S} WHERE run_id = src.id), 0) + v.n, "
        f"{', '.join('v.' + c for c in _STEP_TYPES)} "
        f"FROM {source} AS src, unnest({arrays}) WITH ORDINALITY AS v({cols}, n))"
    )
    return sql, {f"st_{c}": [row.bind(c) for row in rows] for c in _STEP_TYPES}


class RunStore:
    """Statements on executor.runs; each state change is one atomic statement."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool: asyncpg.Pool,
        *,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        max_tool_result_bytes: int = MAX_TOOL_RESULT_BYTES,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.max_output_bytes = max_output_bytes
        self.max_tool_result_bytes = max_tool_result_bytes
        # A statement the server refuses rolls its whole batch back (nothing of it written):
        # each statement is then run alone and gets its own answer. Connection errors (a
        # commit may or may not have happened) go to the callers as they are.
        self._group: Batcher[tuple[str, tuple[Any, ...]], list[asyncpg.Record]] = Batcher(
            self._commit_group,
            max_size=GROUP_MAX,
            alone=self._fetch_alone,
            retry_alone=asyncpg.PostgresError,
        )

    def _step_rows(self, records: Sequence[dict[str, Any]]) -> list[StepRow]:
        return [StepRow.from_record(r, self.max_output_bytes) for r in records]

    async def steps(self, run_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """The run's step records with seq > `after`, in order (agent steps with their tool
        calls)."""
        records = await self.pool.fetch(
            f"{_STEP_SELECT} WHERE run_id = $1 AND seq > $2 ORDER BY seq", run_id, after
        )
        out = [StepRow.from_db(r).to_record() for r in records]
        agents = [r for r in out if r["action"] == "agent_task"]
        if agents:
            # Only runs with agent steps pay the second round trip.
            calls = await self.tool_calls(run_id)
            for record in agents:
                found = calls.get(record["step_id"])
                if found:
                    record["tool_calls"] = found
        return out

    async def tool_calls(
        self, run_id: str, step_id: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Step id -> its tool calls in order (of one step when `step_id` is given)."""
        where, args = "run_id = $1", [run_id]
        if step_id is not None:
            where += " AND step_id = $2"
            args.append(step_id)
        rows = await self.pool.fetch(
            f"SELECT {_TC_COLUMNS} FROM {_TC} WHERE {where} ORDER BY step_id, call_n", *args
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            call = dict(row.items())
            for key in ("started_at", "finished_at"):
                if call[key] is not None:
                    call[key] = call[key].isoformat()
            out.setdefault(call.pop("step_id"), []).append(call)
        return out

    async def begin_tool_call(
        self,
        run_id: str,
        token: str,
        *,
        step_id: str,
        call_n: int,
        name: str,
        attempt: int,
        arguments: Any,
        lease_seconds: float,
    ) -> bool:
        """Record that a tool is about to be called (a heartbeat too); False: lease lost."""
        rows = await self._exec(
            f"WITH u AS (UPDATE {_T} SET lease_expires_at = now() + make_interval(secs => :lease) "
            "WHERE id = :id AND lease_token = :token RETURNING id) "
            f"INSERT INTO {_TC} (run_id, step_id, call_n, name, status, attempt, arguments, "
            "started_at) SELECT u.id, :step, :n, :name, 'running', :attempt, "
            "CAST(:args AS jsonb), now() FROM u "
            "ON CONFLICT (run_id, step_id, call_n) DO UPDATE SET name = EXCLUDED.name, "
            "status = 'running', attempt = EXCLUDED.attempt, arguments = EXCLUDED.arguments, "
            "result = NULL, result_truncated = false, error = NULL, "
            "started_at = EXCLUDED.started_at, finished_at = NULL RETURNING run_id",
            {
                "id": run_id,
                "token": token,
                "lease": float(lease_seconds),
                "step": step_id,
                "n": call_n,
                "name": name,
                "attempt": attempt,
                "args": json.dumps(arguments),
            },
        )
        return bool(rows)

    async def finish_tool_call(
        self,
        run_id: str,
        token: str,
        *,
        step_id: str,
        call_n: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        name: str | None = None,
        attempt: int = 0,
        arguments: Any = None,
    ) -> bool:
        """Record a call's outcome (result capped at max_tool_result_bytes); False: lease lost.

        With `name`, a call that never started (refused) is recorded in one statement.
        """
        capped = cap(result, self.max_tool_result_bytes)
        rows = await self._exec(
            f"WITH u AS (SELECT id FROM {_T} WHERE id = :id AND lease_token = :token) "
            f"INSERT INTO {_TC} (run_id, step_id, call_n, name, status, attempt, arguments, "
            "result, result_truncated, error, started_at, finished_at) "
            "SELECT u.id, :step, :n, :name, :status, :attempt, CAST(:args AS jsonb), "
            "CAST(:result AS jsonb), :truncated, CAST(:error AS jsonb), now(), now() FROM u "
            "ON CONFLICT (run_id, step_id, call_n) DO UPDATE SET status = EXCLUDED.status, "
            "result = EXCLUDED.result, result_truncated = EXCLUDED.result_truncated, "
            "error = EXCLUDED.error, finished_at = now() RETURNING run_id",
            {
                "id": run_id,
                "token": token,
                "step": step_id,
                "n": call_n,
                "name": name or "",
                "status": status,
                "attempt": attempt,
                "args": json.dumps(arguments),
                "result": None if capped.value is None else json.dumps(capped.value),
                "truncated": capped.truncated,
                "error": None if error is None else json.dumps(error),
            },
        )
        return bool(rows)

    async def _with_steps(self, row: RunRow | None) -> RunRow | None:
        # The run first, then its records: those are at least as new as its status.
        if row is None:
            return None
        return replace(row, steps=await self.steps(row.id))

    async def _exec(self, sql: str, params: dict[str, Any]) -> list[asyncpg.Record]:
        query, names = _positional(sql)
        records: list[asyncpg.Record] = await self.pool.fetch(query, *(params[n] for n in names))
        return records

    async def _runs(self, sql: str, params: dict[str, Any]) -> list[RunRow]:
        return [RunRow.from_db(r) for r in await self._exec(sql, params)]

    async def _exec_grouped(self, sql: str, params: dict[str, Any]) -> list[asyncpg.Record]:
        """`_exec`, committed with the hot-path statements of other runs issued meanwhile.

        The caller gets its rows only after the shared transaction committed, so what it
        acts upon (acks, replies) is as durable as with a statement of its own.
        """
        query, names = _positional(sql)
        return await self._group.submit((query, tuple(params[n] for n in names)))

    async def _fetch_alone(self, statement: tuple[str, tuple[Any, ...]]) -> list[asyncpg.Record]:
        query, args = statement
        records: list[asyncpg.Record] = await self.pool.fetch(query, *args)
        return records

    async def _commit_group(
        self, statements: list[tuple[str, tuple[Any, ...]]]
    ) -> list[list[asyncpg.Record]]:
        """Run `statements` in one transaction, in order; their rows once it committed."""
        if len(statements) == 1:
            return [await self._fetch_alone(statements[0])]
        async with self.pool.acquire() as conn, conn.transaction():
            return [await conn.fetch(query, *args) for query, args in statements]

    async def _runs_grouped(self, sql: str, params: dict[str, Any]) -> list[RunRow]:
        return [RunRow.from_db(r) for r in await self._exec_grouped(sql, params)]

    async def claim(
        self,
        run: NewRun,
        *,
        token: str,
        owner: str,
        lease_seconds: float,
        events: Sequence[Event] = (),
        hold: bool = False,
        start_at: datetime | None = None,
    ) -> RunRow | None:
        """The run, now leased to `token`; None when it is terminal or leased elsewhere.

        A run claimed ahead of its time records `start_at` as its start.
        """
        claim = {
            **run.params(),
            "token": token,
            "owner": owner,
            "lease": float(lease_seconds),
            "hold": hold,
            "start_at": start_at,
        }
        if not events:
            rows = await self._runs_grouped(_CLAIM, claim)
            return await self._claimed(rows)
        # Events only when this insert created the run: a CTE around the claim.
        ev_sql, ev_params = _events_cte(events, "c WHERE c.inserted")
        sql = f"WITH c AS ({_CLAIM}){ev_sql} SELECT * FROM c"
        rows = await self._runs_grouped(sql, {**claim, **ev_params})
        return await self._claimed(rows)

    async def _claimed(self, rows: list[RunRow]) -> RunRow | None:
        if not rows:
            return None
        row = rows[0]
        # A run this claim inserted, or a StartRun's pending run claimed the first time, has
        # no step records yet: no second round trip.
        return row if row.inserted or not row.has_steps else await self._with_steps(row)

    async def orphans(self, older_than_seconds: float, limit: int = 100) -> list[RunRow]:
        """Mark, count and return non-terminal runs nobody touched for a while."""
        # Lease long expired, or pending without a lease, buffered or not. Marking stamps
        # lease_expires_at so one sweep takes them; orphan_resumes counts only runs taken up
        # again since the last sweep (a fire waiting out an outage is not a crash loop).
        return await self._runs(
            f"UPDATE {_T} SET lease_expires_at = now(), orphan_resumes = orphan_resumes + "
            "CASE WHEN attempt > resumed_attempt THEN 1 ELSE 0 END, resumed_attempt = attempt "
            f"WHERE id IN (SELECT id FROM {_T} WHERE status IN ('pending', 'running') "
            "AND coalesce(lease_expires_at, created_at) "
            "< now() - make_interval(secs => :age) "
            "ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING *",
            {"age": float(older_than_seconds), "limit": limit},
        )

    async def abandon(self, run_id: str, error: dict[str, Any], events: Sequence[Event]) -> bool:
        """Fail a run no worker holds (its lease expired or it has none); False otherwise."""
        ev_sql, ev_params = _events_cte(events, "u")
        rows = await self._exec(
            f"WITH u AS (UPDATE {_T} SET status = 'failed', finished_at = now(), "
            "error = CAST(:error AS jsonb), lease_token = NULL, lease_expires_at = NULL "
            "WHERE id = :id AND status IN ('pending', 'running') "
            "AND (lease_token IS NULL OR lease_expires_at <= now()) RETURNING id)"
            f"{ev_sql} SELECT count(*) AS n FROM u",
            {"id": run_id, "error": json.dumps(error), **ev_params},
        )
        return bool(rows and rows[0]["n"])

    async def mark_started(self, run_id: str, token: str, key: str, lease_seconds: float) -> bool:
        """Record that a side-effecting step is about to call its action; False: lease lost."""
        rows = await self._exec(
            f"UPDATE {_T} SET started_steps = CASE WHEN :key = ANY(started_steps) "
            "THEN started_steps ELSE array_append(started_steps, :key) END, "
            "lease_expires_at = now() + make_interval(secs => :lease) "
            "WHERE id = :id AND lease_token = :token RETURNING id",
            {"id": run_id, "token": token, "key": key, "lease": float(lease_seconds)},
        )
        return bool(rows)

    async def enqueue(self, events: Sequence[Event]) -> None:
        """Outbox rows on their own (re-published fires)."""
        if events:
            ev_sql, ev_params = _events_cte(events, "(SELECT 1) AS one")
            await self._exec(f"WITH one AS (SELECT 1){ev_sql} SELECT 1 AS ok", ev_params)

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRow | None:
        """A run by id, with its step records unless `with_steps` is false."""
        rows = await self._runs(
            f"SELECT *, now() AS db_now FROM {_T} WHERE id = :id", {"id": run_id}
        )
        row = rows[0] if rows else None
        return await self._with_steps(row) if with_steps else row

    async def workspace_usage(self, workspace_id: str, counter: str) -> dict[str, float]:
        """Runs started this last minute, active runs, LLM spend today, counter this minute."""
        rows = await self._exec(
            f"SELECT count(*) FILTER (WHERE created_at > now() - interval '1 minute' "
            "AND status <> 'skipped') AS recent, "
            "count(*) FILTER (WHERE status IN ('pending', 'running')) AS active, "
            "coalesce(sum(cost_usd) FILTER (WHERE created_at >= date_trunc('day', now())), 0) "
            "AS spend, "
            f"(SELECT coalesce(max(count), 0) FROM {_RC} WHERE key = :k "
            "AND window_start = date_trunc('minute', now())) AS counted "
            f"FROM {_T} WHERE workspace_id = :ws "
            "AND (status IN ('pending', 'running') OR created_at >= date_trunc('day', now()) "
            "OR created_at > now() - interval '1 minute')",
            {"ws": workspace_id, "k": counter},
        )
        row = rows[0]
        return {
            "runs_per_minute": float(row["recent"]),
            "concurrent_runs": float(row["active"]),
            "llm_spend_usd_per_day": float(row["spend"]),
            "webhook_requests_per_minute": float(row["counted"]),
        }

    async def hit(self, key: str) -> int:
        """Count one request against `key` in the current minute; the count so far."""
        rows = await self._exec(
            f"WITH gone AS (DELETE FROM {_RC} WHERE key = :k "
            "AND window_start < date_trunc('minute', now())) "
            f"INSERT INTO {_RC} (key, window_start, count) "
            "VALUES (:k, date_trunc('minute', now()), 1) "
            "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1 "
            "RETURNING count",
            {"k": key},
        )
        return int(rows[0]["count"])

    async def by_fire(self, fire_id: str, *, with_steps: bool = False) -> RunRow | None:
        """A run by fire id (its step records only when asked for)."""
        rows = await self._runs(
            f"SELECT *, now() AS db_now FROM {_T} WHERE fire_id = :f", {"f": fire_id}
        )
        row = rows[0] if rows else None
        return await self._with_steps(row) if with_steps else row

    async def write(
        self,
        run_id: str,
        token: str,
        *,
        steps: Sequence[dict[str, Any]] = (),
        status: str | None = None,
        error: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        lease_seconds: float | None = None,
        events: Sequence[Event] = (),
    ) -> bool:
        """Append step records and/or set the status; False when the lease is no longer ours.

        A terminal status releases the lease and stamps finished_at.
        """
        # The runs row changes by a few fixed-size columns; each record is one new row. The
        # no-op SET keeps the lease check when nothing else changes.
        sets = ["attempt = attempt"]
        params: dict[str, Any] = {"id": run_id, "token": token}
        if status is not None:
            sets.append("status = :status")
            params["status"] = status
            if status in TERMINAL:
                sets += ["finished_at = now()", "lease_token = NULL", "lease_expires_at = NULL"]
        if error is not None:
            sets.append("error = CAST(:error AS jsonb)")
            params["error"] = json.dumps(error)
        if inputs is not None:
            sets.append("inputs = CAST(:inputs AS jsonb)")
            params["inputs"] = json.dumps(inputs)
        if cost_usd is not None:
            sets.append("cost_usd = CAST(:cost AS double precision)")
            params["cost"] = float(cost_usd)
        if lease_seconds is not None and (status is None or status not in TERMINAL):
            # Every write doubles as a heartbeat.
            sets.append("lease_expires_at = now() + make_interval(secs => :lease)")
            params["lease"] = float(lease_seconds)
        ev_sql, ev_params = _events_cte(events, "u")
        st_sql, st_params = _steps_cte(self._step_rows(steps), "u")
        sql = (
            f"WITH u AS (UPDATE {_T} SET {', '.join(sets)} "
            f"WHERE id = :id AND lease_token = :token RETURNING id){st_sql}{ev_sql} "
            "SELECT count(*) AS n FROM u"
        )
        rows = await self._exec_grouped(sql, {**params, **st_params, **ev_params})
        return bool(rows and rows[0]["n"])

    async def release(self, run_id: str, token: str) -> None:
        """Give up the lease now (shutdown) so a redelivery can take the run over at once."""
        await self._exec(
            f"UPDATE {_T} SET lease_expires_at = now() WHERE id = :id AND lease_token = :token "
            "RETURNING id",
            {"id": run_id, "token": token},
        )

    async def heartbeat(self, leases: dict[str, str], lease_seconds: float) -> dict[str, bool]:
        """Extend the leases we hold; run id -> cancel_requested for each still ours.

        It never waits on a row lock: a run being written right now (by a grouped commit
        holding other runs' rows too, so waiting could deadlock) counts as still ours as of
        this statement, and that write extends its lease itself.
        """
        if not leases:
            return {}
        ids = list(leases)
        rows = await self._exec(
            "WITH t AS (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:tokens AS text[])) "
            "AS t(id, token)), "
            f"mine AS (SELECT r.id, r.cancel_requested FROM {_T} AS r, t "
            "WHERE r.id = t.id AND r.lease_token = t.token), "
            f"free AS (SELECT r.id FROM {_T} AS r, t WHERE r.id = t.id "
            "AND r.lease_token = t.token FOR UPDATE OF r SKIP LOCKED), "
            f"ext AS (UPDATE {_T} AS r SET lease_expires_at = now() + "
            "make_interval(secs => :lease) FROM free WHERE r.id = free.id) "
            "SELECT id, cancel_requested FROM mine",
            {"ids": ids, "tokens": [leases[i] for i in ids], "lease": float(lease_seconds)},
        )
        return {r["id"]: bool(r["cancel_requested"]) for r in rows}

    async def cancel_flags(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` whose cancellation was requested."""
        if not ids:
            return set()
        rows = await self._exec(
            f"SELECT id FROM {_T} WHERE id = ANY(CAST(:ids AS text[])) AND cancel_requested",
            {"ids": list(ids)},
        )
        return {r["id"] for r in rows}

    async def create_pending(
        self, run: NewRun, events: Sequence[Event], audit: Sequence[Event] = ()
    ) -> tuple[RunRow, bool]:
        """Insert a pending run (idempotent on fire id) with its fire in the outbox.

        `audit` entries go to the audit outbox in the same statement, only when it inserts.
        """
        ev_sql, ev_params = _events_cte(events, "c")
        au_sql, au_params = _events_cte(audit, "c", table=_A, name="au")
        kept = self._step_rows(run.steps or [])
        st_sql, st_params = _steps_cte(kept, "c")
        sql = (
            f"WITH c AS (INSERT INTO {_T} ({_COLUMNS}, status, created_at) "
            f"VALUES ({_VALUES}, 'pending', now()) ON CONFLICT (fire_id) DO NOTHING "
            f"RETURNING *){st_sql}{ev_sql}{au_sql} SELECT * FROM c"
        )
        rows = await self._runs_grouped(
            sql, {**run.params(), **st_params, **ev_params, **au_params}
        )
        if rows:
            steps = [replace(r, seq=i).to_record() for i, r in enumerate(kept, 1)]
            return replace(rows[0], steps=steps), True
        existing = await self.by_fire(run.fire_id, with_steps=True)
        assert existing is not None
        return existing, False

    async def create_refused(self, run: NewRun, error: dict[str, Any]) -> tuple[RunRow, bool]:
        """Record a run refused before it started (skipped, with the reason; no fire)."""
        rows = await self._runs(
            f"INSERT INTO {_T} ({_COLUMNS}, status, created_at, finished_at, error) "
            f"VALUES ({_VALUES}, 'skipped', now(), now(), CAST(:error AS jsonb)) "
            "ON CONFLICT (fire_id) DO NOTHING RETURNING *",
            {**run.params(), "error": json.dumps(error)},
        )
        if rows:
            return rows[0], True
        existing = await self.by_fire(run.fire_id, with_steps=True)
        assert existing is not None
        return existing, False

    async def request_cancel(
        self, run_id: str, reason: str, events: Sequence[Event], audit: Sequence[Event] = ()
    ) -> None:
        """Flag a run for cancellation; an unclaimed pending run is cancelled at once.

        `audit` entries go to the audit outbox with the flag, only when the run was active.
        """
        ev_sql, ev_params = _events_cte(events, "u")
        au_sql, au_params = _events_cte(audit, "r", table=_A, name="au")
        error = {"type": "Cancelled", "message": reason, "retryable": False, "fields": []}
        await self._exec(
            f"WITH r AS (UPDATE {_T} SET cancel_requested = true, cancel_reason = :reason "
            f"WHERE id = :id AND status IN ('pending', 'running') RETURNING id){au_sql} "
            "SELECT count(*) FROM r",
            {"id": run_id, "reason": reason, **au_params},
        )
        # A run no worker holds is finished here; a held one is stopped by its worker.
        await self._exec(
            f"WITH u AS (UPDATE {_T} SET status = 'cancelled', finished_at = now(), "
            "error = CAST(:error AS jsonb), lease_token = NULL, lease_expires_at = NULL "
            "WHERE id = :id AND status = 'pending' "
            "AND (lease_token IS NULL OR lease_expires_at < now()) RETURNING id)"
            f"{ev_sql} SELECT count(*) FROM u",
            {"id": run_id, "error": json.dumps(error), **ev_params},
        )

    async def list(
        self,
        *,
        workspace_id: str | None,
        automation_id: str,
        status: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        cursor: tuple[str, str] | None,
        limit: int,
    ) -> list[RunRow]:
        """Runs newest first (keyset on created_at, id), without their step records."""
        where = ["true"]
        params: dict[str, Any] = {"limit": limit}
        if workspace_id is not None:
            where.append("workspace_id = :ws")
            params["ws"] = workspace_id
        if automation_id:
            where.append("automation_id = :aid")
            params["aid"] = automation_id
        if status:
            where.append("status = :status")
            params["status"] = status
        if created_after is not None:
            where.append("created_at >= :after")
            params["after"] = created_after
        if created_before is not None:
            where.append("created_at < :before")
            params["before"] = created_before
        if cursor is not None:
            where.append("(created_at, id) < (CAST(:c_at AS timestamptz), CAST(:c_id AS text))")
            params["c_at"] = datetime.fromisoformat(cursor[0])
            params["c_id"] = cursor[1]
        cols = ", ".join(
            c
            for c in [
                "id",
                "fire_id",
                "workspace_id",
                "automation_id",
                "automation_version",
                "trigger_type",
                "trigger_id",
                "status",
                "inputs",
                "scheduled_for",
                "fired_at",
                "created_at",
                "started_at",
                "finished_at",
                "error",
                "retry_of_run_id",
                "principal",
                "cost_usd",
                "attempt",
                "cause",
                "upstream_run_id",
                "chain_depth",
                "note",
            ]
        )
        sql = (
            f"SELECT {cols}, '[]'::jsonb AS steps FROM {_T} WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
        return await self._runs(sql, params)
