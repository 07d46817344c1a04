"""Faults under side-effecting load: nothing lost, nothing run twice, everything terminal.

Each scenario runs its own PostgreSQL (fsync on), nats-server (file store) and the
definitions, scheduler and executor services as real processes (autom.devstack.faults), with
a schedule firing every second and manual StartRun calls, plans that `wait` and POST to a
local sink. Evidence comes from the records, never from a unique constraint alone: every
scheduled instant of the window has a fire at the scheduler, every fire and every
acknowledged StartRun has exactly one run (counted per instant and per request, not per
fire id), every run is terminal within a bound after recovery, and the sink saw each
logical fire's side effect under one idempotency key only (replays allowed).
One scenario runs the same load on a cluster: three NATS nodes with R3 streams and several
replicas of each service.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats
import pytest
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.events.v1 import events_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core.auth import Role, TokenSigner
from autom.core.bus import MSG_ID
from autom.core.grpcserver import channel
from autom.core.protoconv import dict_to_struct
from autom.devstack.eventually import assert_eventually
from autom.devstack.faults import FaultStack

pytestmark = [pytest.mark.fault, pytest.mark.xdist_group("apart")]

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "skipped"}
WORKSPACE = "default"
SERVICES = ("definitions", "scheduler", "executor")
SECRET_NAME = "SINK_TOKEN"
SECRET_VALUE = "sink-token-" + "s" * 16
# Bound on reaching a settled state once the fault is over.
RECOVERY_S = 90.0
HUGE_BYTES = 5 * 1024 * 1024
EXECUTOR_ENV = {
    "AUTOM_HTTP_ALLOW_CIDRS": "127.0.0.0/8",
    # Short leases and ack waits so a killed executor's runs are taken over within seconds.
    "AUTOM_LEASE_SECONDS": "5",
    "AUTOM_ACK_WAIT_SECONDS": "5",
    # Give today's safety net (the orphan sweep) its chance inside the recovery bound.
    "AUTOM_ORPHAN_AFTER_SECONDS": "15",
    "AUTOM_ORPHAN_SWEEP_SECONDS": "3",
}


# ---- the sink ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One request the sink received."""

    path: str
    key: str
    authorization: str
    body: dict[str, Any]


class Sink:
    """A loopback HTTP server on its own thread, so a blocked test loop never stalls it."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                with sink._lock:
                    sink.hits.append(
                        Hit(
                            path=self.path,
                            key=self.headers.get("Idempotency-Key", ""),
                            authorization=self.headers.get("Authorization", ""),
                            body=body if isinstance(body, dict) else {"value": body},
                        )
                    )
                if self.path == "/nul":
                    # JSON any API may send: an escaped NUL inside a string.
                    payload = b'{"text": "before\\u0000after"}'
                elif self.path == "/huge":
                    payload = json.dumps({"blob": "x" * HUGE_BYTES}).encode()
                else:
                    payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve on the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[Hit]:
        """Every request so far."""
        with self._lock:
            return list(self.hits)


@pytest.fixture
def sink() -> Iterator[Sink]:
    """The local side-effect recorder."""
    server = Sink()
    server.start()
    yield server
    server.stop()


async def migrate_all(database_url: str) -> None:
    """Every service's schema, in-process (as the suite's template database is built)."""
    for service in SERVICES:
        await importlib.import_module(f"autom.{service}.db").migrate(database_url)


@pytest.fixture
async def stack(request: pytest.FixtureRequest, signing_key: str) -> AsyncIterator[FaultStack]:
    """A fresh stack of servers and services; every process is killed at teardown.

    Indirect parametrisation shapes it: `{"nats_nodes": 3, "replicas": {...}}`.
    """
    shape: dict[str, Any] = getattr(request, "param", {})
    # Outside pytest's temp root: another pytest session resets it, which would cut the
    # running PostgreSQL off from its data.
    root = Path(tempfile.mkdtemp(prefix="autom-faults-"))
    # The sink is on loopback: definitions validates with the executor's allow-list.
    allow = {"AUTOM_HTTP_ALLOW_CIDRS": EXECUTOR_ENV["AUTOM_HTTP_ALLOW_CIDRS"]}
    built = FaultStack(
        root,
        signing_key=signing_key,
        env={"executor": EXECUTOR_ENV, "definitions": allow},
        **shape,
    )
    try:
        await built.start(migrate=migrate_all)
        yield built
    finally:
        if getattr(request.node, "fault_call_failed", False):
            for name in built.instances:
                print(f"==== {name} log (last lines) ====\n{built.log_tail(name, 60)}")
        built.close()
        shutil.rmtree(root, ignore_errors=True)


# ---- the workload -----------------------------------------------------------------------
def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def half_second_from_now(seconds: float) -> datetime:
    """An instant `seconds` ahead, on a half second (never equal to a firing instant)."""
    target = time.time() + seconds
    return datetime.fromtimestamp(math.floor(target) + 0.5, UTC)


def hook_step(sink: Sink, step_id: str = "hook", path: str = "/hook") -> dict[str, Any]:
    """A POST to the sink naming its run and logical fire, authorised by a secret."""
    return {
        "id": step_id,
        "action": "http_request",
        "params": {
            "method": "POST",
            "url": f"{sink.url}{path}",
            "headers": {"Authorization": "Bearer {{ secrets." + SECRET_NAME + " }}"},
            "json": {
                "run": "{{ run.id }}",
                "automation": "{{ run.automation_id }}",
                "trigger": "{{ trigger.type }}",
                "scheduled_for": "{{ trigger.scheduled_for }}",
                "tag": "{{ inputs.tag }}",
            },
        },
    }


def ticking(name: str, sink: Sink, start_at: datetime) -> dict[str, Any]:
    """Every second from `start_at`, catching up every missed instant: wait, POST, wait."""
    return {
        "name": name,
        "triggers": [
            {
                "id": "tick",
                "type": "schedule",
                "config": {
                    "cron": "* * * * * *",
                    "catchup": "all",
                    "catchup_window": "1h",
                    "start_at": _rfc3339(start_at),
                },
                "inputs": {"tag": ""},
            }
        ],
        "plan": [
            {"id": "before", "action": "wait", "params": {"duration": "100ms"}},
            hook_step(sink),
            {"id": "after", "action": "wait", "params": {"duration": "100ms"}},
        ],
    }


@dataclass
class Api:
    """The services' gRPC APIs as the workspace owner."""

    definitions: dgrpc.DefinitionsServiceStub
    executor: egrpc.ExecutorServiceStub
    channels: list[grpc.aio.Channel]
    # Background load started on these clients; cancelled at teardown whatever happened.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def create(self, raw: dict[str, Any]) -> str:
        """Create an automation; its id."""
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        response = await self.definitions.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition), timeout=10
        )
        return str(response.automation.id)


@pytest.fixture
async def api(stack: FaultStack, signing_key: str) -> AsyncIterator[Api]:
    """Clients of definitions and executor, and the secret the sink step uses."""
    token = TokenSigner(signing_key).issue(
        subject="user:owner", workspace_id=WORKSPACE, role=Role.OWNER
    )[0]
    defs_channel = channel(stack.address("definitions"), token)
    exec_channel = channel(stack.address("executor"), token)
    clients = Api(
        definitions=dgrpc.DefinitionsServiceStub(defs_channel),
        executor=egrpc.ExecutorServiceStub(exec_channel),
        channels=[defs_channel, exec_channel],
    )
    await clients.definitions.SetSecret(
        dpb.SetSecretRequest(request_id="sink-token", name=SECRET_NAME, value=SECRET_VALUE),
        timeout=10,
    )
    yield clients
    for task in clients.tasks:
        task.cancel()
    await asyncio.gather(*clients.tasks, return_exceptions=True)
    for ch in clients.channels:
        await ch.close()


@dataclass
class ManualDriver:
    """StartRun every `period` seconds, each retried with its request id until acknowledged.

    A client that got no answer cannot know whether its call took effect, so it retries
    with the same idempotency key; every acknowledged request is an expected run.
    """

    api: Api
    automation_id: str
    period: float = 1.5
    prefix: str = field(default_factory=lambda: f"m{uuid.uuid4().hex[:6]}")
    acked: list[str] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin issuing requests."""
        self._task = asyncio.create_task(self._run())
        self.api.tasks.append(self._task)

    async def stop(self, timeout: float = RECOVERY_S) -> None:
        """Issue no new request; wait until the one in flight is acknowledged."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout)

    async def start_one(self, tag: str, automation_id: str | None = None) -> None:
        """One StartRun, retried with the same request id until acknowledged."""
        request = epb.StartRunRequest(
            request_id=tag,
            automation_id=automation_id or self.automation_id,
            inputs=dict_to_struct({"tag": tag}),
        )
        while True:
            try:
                await self.api.executor.StartRun(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                self.refusals[exc.code().name] += 1
                await asyncio.sleep(0.5)
                continue
            self.acked.append(tag)
            return

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            await self.start_one(f"{self.prefix}-{n}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period)


# ---- the records ------------------------------------------------------------------------
@dataclass(frozen=True)
class Records:
    """What the scheduler and the executor stored, read at one moment."""

    fires: list[asyncpg.Record]
    runs: list[asyncpg.Record]

    def runs_of(self, automation_id: str) -> list[asyncpg.Record]:
        """Runs of one automation."""
        return [r for r in self.runs if r["automation_id"] == automation_id]


async def read_records(stack: FaultStack) -> Records:
    """scheduler.fires and executor.runs (read only); AssertionError while unreachable."""
    try:
        conn = await asyncpg.connect(stack.database_url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise AssertionError(f"database unreachable: {exc!r}") from exc
    try:
        fires = await conn.fetch(
            "SELECT fire_id, schedule_id, scheduled_for, kind, published_at FROM scheduler.fires"
        )
        runs = await conn.fetch(
            "SELECT id, fire_id, automation_id, trigger_type, scheduled_for, fire_inputs,"
            " status, error, attempt FROM executor.runs"
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise AssertionError(f"database unreadable: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return Records(fires=list(fires), runs=list(runs))


def _tag(run: asyncpg.Record) -> str:
    inputs = run["fire_inputs"]
    if isinstance(inputs, str):
        inputs = json.loads(inputs)
    return str((inputs or {}).get("tag") or "")


def _error_type(run: asyncpg.Record) -> str:
    error = run["error"]
    if isinstance(error, str):
        error = json.loads(error)
    if not error:
        return "-"
    return f"{error.get('type', '?')}: {str(error.get('message', ''))[:160]}"


def instants(start_at: datetime, cutoff: datetime) -> list[datetime]:
    """Every whole second in [start_at, cutoff]: what a `* * * * * *` schedule must fire."""
    first = math.ceil(start_at.timestamp())
    last = math.floor(cutoff.timestamp())
    return [datetime.fromtimestamp(s, UTC) for s in range(first, last + 1)]


@dataclass
class Expected:
    """The fires a scenario must see run: scheduled windows and acknowledged StartRuns."""

    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    manual: dict[str, str] = field(default_factory=dict)  # tag -> automation id

    def schedule(self, automation_id: str, start_at: datetime, cutoff: datetime) -> None:
        """Every instant of [start_at, cutoff] of this automation's `tick` trigger."""
        self.windows[automation_id] = (start_at, cutoff)

    def started(self, tags: list[str], automation_id: str) -> None:
        """Acknowledged StartRun requests."""
        for tag in tags:
            self.manual[tag] = automation_id


def pending_work(records: Records, expected: Expected) -> list[str]:
    """What is still missing before the scenario has settled (empty when settled)."""
    missing: list[str] = []
    fired = {(f["schedule_id"], f["scheduled_for"]) for f in records.fires}
    runs_by_fire = defaultdict(list)
    for run in records.runs:
        runs_by_fire[run["fire_id"]].append(run)
    for automation_id, (start_at, cutoff) in expected.windows.items():
        sid = f"{automation_id}:tick"
        due = instants(start_at, cutoff)
        unfired = [t for t in due if (sid, t) not in fired]
        if unfired:
            missing.append(
                f"{automation_id}: {len(unfired)} of {len(due)} scheduled instants have no "
                f"fire at the scheduler (first {unfired[0].isoformat()})"
            )
        fires = [
            f for f in records.fires if f["schedule_id"] == sid and start_at <= f["scheduled_for"]
        ]
        fires = [f for f in fires if f["scheduled_for"] <= cutoff]
        no_run = [f["fire_id"] for f in fires if not runs_by_fire.get(f["fire_id"])]
        if no_run:
            missing.append(
                f"{automation_id}: {len(no_run)} of {len(fires)} fires have no run "
                f"(e.g. {no_run[:3]})"
            )
    by_tag = {_tag(r): r for r in records.runs if r["trigger_type"] == "manual"}
    no_manual = [tag for tag in expected.manual if tag not in by_tag]
    if no_manual:
        missing.append(
            f"{len(no_manual)} of {len(expected.manual)} acknowledged StartRun requests have "
            f"no run (e.g. {no_manual[:3]})"
        )
    running = [r for r in in_scope(records, expected) if r["status"] not in TERMINAL]
    if running:
        states = Counter(f"{r['status']}(attempt {r['attempt']})" for r in running)
        missing.append(
            f"{len(running)} runs not terminal: {dict(states)} "
            f"(e.g. {[r['fire_id'] for r in running[:3]]})"
        )
    return missing


def in_scope(records: Records, expected: Expected) -> list[asyncpg.Record]:
    """Runs of the expected fires: instants of the windows and acknowledged requests."""
    out = []
    for run in records.runs:
        if run["trigger_type"] == "manual":
            if _tag(run) in expected.manual:
                out.append(run)
            continue
        window = expected.windows.get(run["automation_id"])
        if window and run["scheduled_for"] and window[0] <= run["scheduled_for"] <= window[1]:
            out.append(run)
    return out


async def settle(stack: FaultStack, expected: Expected, timeout: float = RECOVERY_S) -> Records:
    """Wait (bounded) until every expected fire has a terminal run; the records then.

    On timeout it returns the last records anyway, so the report names every problem.
    """
    last: list[Records] = []

    async def settled() -> Records:
        records = await read_records(stack)
        last[:] = [records]
        missing = pending_work(records, expected)
        assert not missing, "; ".join(missing)
        return records

    try:
        return await assert_eventually(settled, timeout=timeout, interval=0.5)
    except AssertionError:
        if not last:
            raise
        return last[0]


def problems(
    records: Records,
    expected: Expected,
    hits: list[Hit],
    *,
    outcome: dict[str, str] | None = None,
) -> list[str]:
    """Every broken promise in the records; `outcome` maps automation id -> status it must
    end in (default `succeeded`)."""
    found = pending_work(records, expected)
    outcome = outcome or {}
    scoped = in_scope(records, expected)

    # Exactly one run per scheduled instant and per acknowledged request (not per fire id).
    per_fire = Counter(
        (r["automation_id"], r["scheduled_for"]) if r["trigger_type"] != "manual" else _tag(r)
        for r in scoped
    )
    doubled = [k for k, n in per_fire.items() if n > 1]
    if doubled:
        found.append(f"{len(doubled)} fires have more than one run (e.g. {doubled[:3]})")
    for automation_id, (start_at, cutoff) in expected.windows.items():
        sid = f"{automation_id}:tick"
        fires = {
            f["scheduled_for"]
            for f in records.fires
            if f["schedule_id"] == sid and start_at <= f["scheduled_for"] <= cutoff
        }
        due = set(instants(start_at, cutoff))
        if fires - due:
            found.append(f"{automation_id}: fires at instants the schedule does not have")

    # Every run ends as it must.
    wrong = [r for r in scoped if r["status"] in TERMINAL]
    wrong = [r for r in wrong if r["status"] != outcome.get(r["automation_id"], "succeeded")]
    if wrong:
        kinds = Counter(f"{r['status']} [{_error_type(r)}]" for r in wrong)
        found.append(
            f"{len(wrong)} of {len(scoped)} runs ended in the wrong state: "
            + "; ".join(f"{n}x {k}" for k, n in kinds.most_common(5))
        )

    # Side effects: each succeeded run's POST reached the sink; a logical fire's POSTs all
    # carry one idempotency key, its run's.
    run_by_id = {r["id"]: r for r in records.runs}
    keys_by_fire: dict[Any, set[str]] = defaultdict(set)
    for hit in hits:
        if hit.path != "/hook":
            continue
        body = hit.body
        if body.get("trigger") == "manual":
            logical: Any = body.get("tag")
        else:
            logical = (body.get("automation"), body.get("scheduled_for"))
        keys_by_fire[logical].add(hit.key)
        run = run_by_id.get(str(body.get("run")))
        if run is None:
            found.append(f"side effect of a run the executor has no record of: {body}")
        elif hit.key != f"{run['id']}:hook":
            found.append(f"side effect under a foreign idempotency key {hit.key!r}: {body}")
        if hit.authorization != f"Bearer {SECRET_VALUE}":
            found.append(f"side effect without its secret: {hit.authorization!r}")
    twice = {k: v for k, v in keys_by_fire.items() if len(v) > 1}
    if twice:
        found.append(
            f"{len(twice)} logical fires executed their side effect under different "
            f"idempotency keys (e.g. {list(twice.items())[:2]})"
        )
    seen_keys = {hit.key for hit in hits}
    unsent = [
        r["id"]
        for r in scoped
        if r["status"] == "succeeded"
        and outcome.get(r["automation_id"], "succeeded") == "succeeded"
        and f"{r['id']}:hook" not in seen_keys
        and r["automation_id"] in expected.windows.keys() | set(expected.manual.values())
    ]
    if unsent:
        found.append(f"{len(unsent)} succeeded runs never sent their side effect")
    return found


def report(found: list[str], records: Records, expected: Expected, hits: list[Hit]) -> str:
    """The assertion message: the problems and the counts they come from."""
    scoped = in_scope(records, expected)
    statuses = Counter(r["status"] for r in scoped)
    replays = sum(n - 1 for n in Counter(h.key for h in hits).values())
    instants_due = sum(len(instants(*window)) for window in expected.windows.values())
    return (
        "\n  - ".join(["fault broke a promise:", *found])
        + f"\n  (expected: {instants_due} scheduled instants + {len(expected.manual)} "
        f"StartRun requests; runs in scope: {len(scoped)} {dict(statuses)}; "
        f"sink requests: {len(hits)}, replays with the same key: {replays})"
    )


async def wait_runs(stack: FaultStack, automation_id: str, n: int, timeout: float = 60) -> None:
    """Until `n` runs of the automation succeeded."""

    async def enough() -> None:
        records = await read_records(stack)
        done = [r for r in records.runs_of(automation_id) if r["status"] == "succeeded"]
        assert len(done) >= n, f"{len(done)} of {n} runs succeeded"

    await assert_eventually(enough, timeout=timeout, interval=0.3)


async def finish(
    stack: FaultStack,
    sink: Sink,
    expected: Expected,
    driver: ManualDriver | None,
    *,
    outcome: dict[str, str] | None = None,
) -> tuple[Records, list[Hit]]:
    """Stop the manual load, let the stack settle (bounded) and check every promise."""
    if driver is not None:
        await driver.stop()
        expected.started(driver.acked, driver.automation_id)
    records = await settle(stack, expected)
    hits = sink.snapshot()
    found = problems(records, expected, hits, outcome=outcome)
    assert not found, report(found, records, expected, hits)
    return records, hits


async def ticking_load(
    api: Api, sink: Sink, stack: FaultStack, name: str
) -> tuple[str, datetime, ManualDriver]:
    """A schedule firing every second plus StartRun calls, warmed up until runs succeed."""
    start_at = half_second_from_now(1.0)
    automation_id = await api.create(ticking(name, sink, start_at))
    driver = ManualDriver(api, automation_id)
    driver.start()
    await wait_runs(stack, automation_id, 3)
    return automation_id, start_at, driver


# ---- scenarios --------------------------------------------------------------------------
@pytest.mark.timeout(240)
async def test_postgres_killed_for_30s_with_a_backlog_loses_no_fire(
    stack: FaultStack, api: Api, sink: Sink
) -> None:
    automation_id, start_at, driver = await ticking_load(api, sink, stack, "pg-outage")

    # A backlog: the executor is frozen while fires keep arriving, then meets a dead database.
    stack.pause("executor")

    async def backlog() -> None:
        records = await read_records(stack)
        sid = f"{automation_id}:tick"
        published = [f for f in records.fires if f["schedule_id"] == sid and f["published_at"]]
        assert len(published) - len(records.runs_of(automation_id)) >= 4

    try:
        await assert_eventually(backlog, timeout=20, interval=0.3)
    finally:
        stack.kill_postgres()
        stack.resume("executor")
    await asyncio.sleep(30)  # the outage itself
    stack.restart_postgres()
    cutoff = datetime.now(UTC) + timedelta(seconds=3)
    await _until(cutoff)

    expected = Expected()
    expected.schedule(automation_id, start_at, cutoff)
    await finish(stack, sink, expected, driver)


@pytest.mark.timeout(280)
async def test_definitions_down_for_60s_is_waited_out_not_failed(
    stack: FaultStack, api: Api, sink: Sink
) -> None:
    warm_id, warm_start, driver = await ticking_load(api, sink, stack, "defs-warm")
    # An automation the executor has never run: its first fires come during the outage.
    cold_start = half_second_from_now(10.0)
    cold_id = await api.create(ticking("defs-cold", sink, cold_start))

    async def scheduled() -> None:
        conn = await asyncpg.connect(stack.database_url, timeout=5)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM scheduler.schedules WHERE automation_id = $1", cold_id
            )
        finally:
            await conn.close()
        assert n == 1

    await assert_eventually(scheduled, timeout=15, interval=0.2)
    stack.kill("definitions")
    await asyncio.sleep(60)  # the outage itself; fires and StartRun calls keep coming
    await stack.restart("definitions")
    cutoff = datetime.now(UTC) + timedelta(seconds=3)
    await _until(cutoff)

    expected = Expected()
    expected.schedule(warm_id, warm_start, cutoff)
    expected.schedule(cold_id, cold_start, cutoff)
    await finish(stack, sink, expected, driver)


@pytest.mark.timeout(180)
async def test_nats_killed_and_restarted_on_its_store_loses_no_fire(
    stack: FaultStack, api: Api, sink: Sink
) -> None:
    automation_id, start_at, driver = await ticking_load(api, sink, stack, "nats-kill")
    stack.kill_nats()
    await asyncio.sleep(5)  # the outage itself
    stack.restart_nats()
    await wait_runs(stack, automation_id, len(await _succeeded(stack, automation_id)) + 3)
    cutoff = datetime.now(UTC) + timedelta(seconds=2)
    await _until(cutoff)

    expected = Expected()
    expected.schedule(automation_id, start_at, cutoff)
    await finish(stack, sink, expected, driver)


@pytest.mark.timeout(200)
async def test_executor_scheduler_and_definitions_killed_in_turn_lose_nothing(
    stack: FaultStack, api: Api, sink: Sink
) -> None:
    automation_id, start_at, driver = await ticking_load(api, sink, stack, "kill-each")
    for service in ("executor", "scheduler", "definitions"):
        stack.kill(service)
        await stack.restart(service)
        # Work goes on after each restart before the next one dies.
        await wait_runs(stack, automation_id, len(await _succeeded(stack, automation_id)) + 3)
    cutoff = datetime.now(UTC) + timedelta(seconds=2)
    await _until(cutoff)

    expected = Expected()
    expected.schedule(automation_id, start_at, cutoff)
    await finish(stack, sink, expected, driver)


@pytest.mark.timeout(200)
async def test_poison_corpus_fails_cleanly_and_blocks_nothing(
    stack: FaultStack, api: Api, sink: Sink
) -> None:
    automation_id, start_at, driver = await ticking_load(api, sink, stack, "healthy")
    nul_http = await api.create({"name": "nul-http", "plan": [hook_step(sink, "nul", "/nul")]})
    nul_transform = await api.create(
        {
            "name": "nul-transform",
            "plan": [
                # Jinja decodes the escape: the rendered output holds a real NUL.
                {"id": "nul", "action": "transform", "params": {"output": '{{ "a\\u0000b" }}'}},
                {"id": "said", "action": "log", "params": {"message": "{{ steps.nul.output }}"}},
            ],
        }
    )
    huge = await api.create(
        {"name": "huge", "plan": [hook_step(sink, "big", "/huge"), hook_step(sink)]}
    )

    # Messages no executor can decode, straight onto the fires subject.
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        undecodable = [
            (
                await js.publish(
                    f"automations.fires.{WORKSPACE}", payload, headers={MSG_ID: f"poison-{i}"}
                )
            ).seq
            for i, payload in enumerate(
                (
                    b"\xff\xfe not a protobuf \x00\x01",
                    events_pb2.FireEvent(fire_id="poison:no-automation").SerializeToString(),
                )
            )
        ]
    finally:
        await nc.close()

    poison = {nul_http: "failed", nul_transform: "failed", huge: "succeeded"}
    tags = {automation: f"poison-{uuid.uuid4().hex[:8]}" for automation in poison}
    for automation, tag in tags.items():
        await driver.start_one(tag, automation)
    # Healthy fires keep coming after the poison: it must not hold them up.
    cutoff = datetime.now(UTC) + timedelta(seconds=5)
    await _until(cutoff)

    await driver.stop()
    expected = Expected()
    expected.schedule(automation_id, start_at, cutoff)
    expected.started(driver.acked, automation_id)
    for automation, tag in tags.items():
        expected.manual[tag] = automation
    records = await settle(stack, expected)
    hits = sink.snapshot()
    found = problems(records, expected, hits, outcome=poison)

    # The poison runs' own side effects: replays only, under their run's key.
    by_tag = {_tag(r): r for r in records.runs}
    for tag in tags.values():
        run = by_tag.get(tag)
        if run is None:
            continue
        keys = {h.key for h in hits if h.body.get("tag") == tag}
        if any(not k.startswith(f"{run['id']}:") for k in keys):
            found.append(f"{tag}: side effects under keys of another run: {keys}")
    # A run with a huge output can still be read through the API.
    huge_run = by_tag.get(tags[huge])
    if huge_run is not None:
        try:
            got = await api.executor.GetRun(epb.GetRunRequest(run_id=huge_run["id"]), timeout=10)
            if got.run.status == 0:
                found.append("GetRun of the huge-output run has no status")
        except grpc.aio.AioRpcError as exc:
            found.append(f"GetRun of the huge-output run fails: {exc.code().name}")
    # Undecodable messages are settled (dead-lettered), not left unacked or redelivered:
    # the consumer's ack floor moves past them while healthy fires keep flowing.
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()

        async def drained() -> None:
            info = await js.consumer_info("AUTOM_FIRES", "executor")
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            assert floor >= max(undecodable), (
                f"fires consumer: ack floor {floor} is below the undecodable messages "
                f"{undecodable} ({info.num_ack_pending} unacked, "
                f"{info.num_redelivered} redelivered)"
            )

        try:
            await assert_eventually(drained, timeout=15, interval=0.5)
        except AssertionError as exc:
            found.append(str(exc))
    finally:
        await nc.close()
    assert not found, report(found, records, expected, hits)


async def _succeeded(stack: FaultStack, automation_id: str) -> list[asyncpg.Record]:
    records = await assert_eventually(lambda: read_records(stack), timeout=30, interval=0.5)
    return [r for r in records.runs_of(automation_id) if r["status"] == "succeeded"]


async def _until(instant: datetime) -> None:
    """Let the load run up to `instant` (the end of the window it is judged on)."""
    await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))


# ---- a cluster ----------------------------------------------------------------------------
CLUSTER = {
    "nats_nodes": 3,
    "replicas": {"definitions": 2, "scheduler": 2, "executor": 3},
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stack", [CLUSTER], indirect=True, ids=["3-nats-2-2-3"])
async def test_cluster_loses_nothing_when_the_stream_leader_a_scheduler_and_an_executor_die(
    stack: FaultStack, api: Api, sink: Sink, figures: Callable[[str], None]
) -> None:
    """Three NATS nodes (R3 streams), two definitions, two schedulers, three executors:
    SIGKILL, one at a time, the fires stream's leader node, a scheduler and an executor."""
    automation_id, start_at, driver = await ticking_load(api, sink, stack, "cluster")
    progress_after = len(await _succeeded(stack, automation_id)) + 3

    nc = await nats.connect(stack.nats_servers)
    try:
        info = await nc.jetstream().stream_info("AUTOM_FIRES")
        assert info.config.num_replicas == 3, "streams are not replicated on the cluster"
    finally:
        await nc.close()
    leader = await stack.stream_leader("AUTOM_FIRES")
    killed_at = time.monotonic()
    stack.kill_nats(leader)
    # The survivors elect a new leader and the work goes on without the dead node.
    successor = await stack.stream_leader("AUTOM_FIRES")
    assert successor != leader
    await wait_runs(stack, automation_id, progress_after)
    stack.restart_nats(leader)
    kills = [
        f"nats node {leader} (AUTOM_FIRES leader; node {successor} took over, "
        f"3 more runs {time.monotonic() - killed_at:.1f} s after the kill)"
    ]

    for instance in ("scheduler", "executor"):
        killed_at = time.monotonic()
        stack.kill(instance)
        await stack.restart(instance)
        await wait_runs(stack, automation_id, len(await _succeeded(stack, automation_id)) + 3)
        kills.append(f"{instance} (back and 3 more runs in {time.monotonic() - killed_at:.1f} s)")
    cutoff = datetime.now(UTC) + timedelta(seconds=2)
    await _until(cutoff)

    expected = Expected()
    expected.schedule(automation_id, start_at, cutoff)
    records, hits = await finish(stack, sink, expected, driver)
    scoped = in_scope(records, expected)
    replays = sum(n - 1 for n in Counter(h.key for h in hits).values())

    # The restarted node caught up: every replica of the fires stream is current again.
    nc = await nats.connect(stack.nats_servers)
    try:
        js = nc.jetstream()

        async def rejoined() -> None:
            cluster = (await js.stream_info("AUTOM_FIRES")).cluster
            assert cluster is not None
            peers = {p.name: (p.current, p.offline) for p in cluster.replicas or []}
            assert len(peers) == 2 and all(
                current and not offline for current, offline in peers.values()
            ), f"AUTOM_FIRES replicas: {peers}"

        await assert_eventually(rejoined, timeout=30, interval=0.5)
    finally:
        await nc.close()

    # The figures are the point of this test: shown even on success.
    figures(
        f"cluster: {len(instants(start_at, cutoff))} scheduled fires + "
        f"{len(expected.manual)} StartRun requests -> {len(scoped)} runs "
        f"{dict(Counter(r['status'] for r in scoped))}; sink requests {len(hits)}, "
        f"replays with the same key {replays}; killed in turn: {'; '.join(kills)}"
    )
