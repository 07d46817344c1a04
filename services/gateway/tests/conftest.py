"""Fake-but-real upstreams (in-process gRPC with the real interceptor) and a live gateway."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import (
    definitions_pb2,
    definitions_service_pb2,
    definitions_service_pb2_grpc,
)
from autom.api.executor.v1 import executor_pb2, executor_service_pb2, executor_service_pb2_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from autom.core.auth import Role, TokenSigner, current_principal
from autom.core.errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    Unavailable,
    ValidationFailed,
    Violation,
)
from autom.core.grpcserver import GrpcApp
from autom.devstack.asgi import serve_asgi
from autom.devstack.testing import TEST_SIGNING_KEY
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings

SECRET = TEST_SIGNING_KEY
DS = definitions_service_pb2
ES = executor_service_pb2
SS = scheduler_service_pb2
Status = definitions_pb2.AutomationStatus


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def definition_violations(definition: definition_pb2.AutomationDefinition) -> list[Violation]:
    """A tiny stand-in for the definitions service's validator."""
    import re

    out = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", definition.name):
        out.append(Violation("name", "must match ^[a-z0-9][a-z0-9_-]{0,62}$"))
    seen: set[str] = set()
    for i, step in enumerate(definition.plan):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", step.id):
            out.append(Violation(f"plan[{i}].id", "must match ^[a-z][a-z0-9_]*$"))
        elif step.id in seen:
            out.append(Violation(f"plan[{i}].id", f"duplicate step id {step.id!r}"))
        seen.add(step.id)
    return out


class FakeDefinitions(definitions_service_pb2_grpc.DefinitionsServiceServicer):
    """In-memory automations; raises the same domain errors as the real service."""

    def __init__(self) -> None:
        self.automations: dict[str, definitions_pb2.Automation] = {}
        self.seen_metadata: list[dict[str, str]] = []

    def _find(self, key: str) -> definitions_pb2.Automation:
        ws = current_principal().workspace_id
        for a in self.automations.values():
            if (a.id == key or a.name == key) and a.workspace_id == ws:
                return a
        raise NotFound("automation", key)

    async def ValidateDefinition(self, request: Any, context: Any) -> Any:
        violations = definition_violations(request.definition)
        return DS.ValidateDefinitionResponse(
            valid=not violations,
            violations=[
                definition_pb2.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ],
        )

    async def CreateAutomation(self, request: Any, context: Any) -> Any:
        violations = definition_violations(request.definition)
        if violations:
            raise ValidationFailed(
                [Violation(f"definition.{v.field}", v.description) for v in violations]
            )
        ws = current_principal().workspace_id
        if any(
            a.name == request.definition.name and a.workspace_id == ws
            for a in self.automations.values()
        ):
            raise AlreadyExists(f"automation {request.definition.name!r} already exists")
        automation = definitions_pb2.Automation(
            id=str(uuid.uuid4()),
            workspace_id=ws,
            name=request.definition.name,
            status=Status.AUTOMATION_STATUS_PAUSED
            if request.paused
            else Status.AUTOMATION_STATUS_ACTIVE,
            version=1,
            definition=request.definition,
            created_by=current_principal().subject,
            create_time=_now(),
            update_time=_now(),
        )
        self.automations[automation.id] = automation
        return DS.CreateAutomationResponse(automation=automation)

    async def GetAutomation(self, request: Any, context: Any) -> Any:
        automation = self._find(request.automation_id)
        if request.version and request.version != automation.version:
            raise NotFound("automation version", f"{request.automation_id}@{request.version}")
        return DS.GetAutomationResponse(automation=automation)

    async def ListAutomations(self, request: Any, context: Any) -> Any:
        if request.page_size < 0:
            raise ValidationFailed([Violation("page_size", "must not be negative")])
        ws = current_principal().workspace_id
        items = sorted(
            (a for a in self.automations.values() if a.workspace_id == ws),
            key=lambda a: (a.name, a.id),
        )
        if request.status:
            items = [a for a in items if a.status == request.status]
        if request.tag:
            items = [a for a in items if request.tag in a.definition.metadata.tags]
        if request.name_prefix:
            items = [a for a in items if a.name.startswith(request.name_prefix)]
        return DS.ListAutomationsResponse(automations=items[: request.page_size or 50])

    async def UpdateAutomation(self, request: Any, context: Any) -> Any:
        automation = self._find(request.automation_id)
        if request.version != automation.version:
            raise Conflict(f"version {request.version} is stale; current is {automation.version}")
        automation.definition.CopyFrom(request.definition)
        automation.version += 1
        automation.update_time.CopyFrom(_now())
        return DS.UpdateAutomationResponse(automation=automation)

    async def PauseAutomation(self, request: Any, context: Any) -> Any:
        automation = self._find(request.automation_id)
        automation.status = Status.AUTOMATION_STATUS_PAUSED
        automation.pause_note = request.note
        return DS.PauseAutomationResponse(automation=automation)

    async def DeleteAutomation(self, request: Any, context: Any) -> Any:
        automation = self._find(request.automation_id)
        del self.automations[automation.id]
        return DS.DeleteAutomationResponse()

    async def WhoAmI(self, request: Any, context: Any) -> Any:
        self.seen_metadata.append(
            {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        )
        p = current_principal()
        return DS.WhoAmIResponse(
            principal=p.subject,
            workspace_id=p.workspace_id,
            role=definitions_pb2.Role.Value(f"ROLE_{p.role.value.upper()}"),
            token_id=p.token_id,
        )


class FakeExecutor(executor_service_pb2_grpc.ExecutorServiceServicer):
    """Runs that succeed at once; WatchRun streams snapshot, step and terminal events."""

    def __init__(self, definitions: FakeDefinitions) -> None:
        self.definitions = definitions
        self.runs: dict[str, executor_pb2.Run] = {}
        # run id -> event the stream waits on after its first message (to prove streaming).
        self.gates: dict[str, asyncio.Event] = {}
        # run ids whose stream breaks after the first message.
        self.break_after_first: set[str] = set()

    def _run(self, run_id: str) -> executor_pb2.Run:
        run = self.runs.get(run_id)
        if run is None or run.workspace_id != current_principal().workspace_id:
            raise NotFound("run", run_id)
        return run

    async def StartRun(self, request: Any, context: Any) -> Any:
        automation = self.definitions._find(request.automation_id)
        run = executor_pb2.Run(
            id=str(uuid.uuid4()),
            fire_id=f"manual:{request.request_id or uuid.uuid4()}",
            workspace_id=automation.workspace_id,
            automation_id=automation.id,
            automation_version=automation.version,
            trigger_type="manual",
            status=executor_pb2.RunStatus.RUN_STATUS_PENDING,
            inputs=request.inputs,
            create_time=_now(),
            principal=current_principal().subject,
            attempt=1,
        )
        for step in automation.definition.plan:
            run.steps.add(
                step_id=step.id, action=step.action, status=executor_pb2.STEP_STATUS_PENDING
            )
        self.runs[run.id] = run
        return ES.StartRunResponse(run=run)

    async def GetRun(self, request: Any, context: Any) -> Any:
        if request.run_id == "slow":
            await asyncio.sleep(10)
        return ES.GetRunResponse(run=self._run(request.run_id))

    async def ListRuns(self, request: Any, context: Any) -> Any:
        ws = current_principal().workspace_id
        runs = [r for r in self.runs.values() if r.workspace_id == ws]
        if request.automation_id:
            runs = [r for r in runs if r.automation_id == request.automation_id]
        if request.status:
            runs = [r for r in runs if r.status == request.status]
        return ES.ListRunsResponse(runs=runs[: request.page_size or 50])

    async def CancelRun(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id)
        if run.status in (executor_pb2.RUN_STATUS_PENDING, executor_pb2.RUN_STATUS_RUNNING):
            run.status = executor_pb2.RUN_STATUS_CANCELLED
        return ES.CancelRunResponse(run=run)

    async def WatchRun(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id)
        run.status = executor_pb2.RUN_STATUS_RUNNING
        run.start_time.CopyFrom(_now())
        yield ES.WatchRunResponse(run=run, kind="snapshot")
        gate = self.gates.get(run.id)
        if gate is not None:
            await gate.wait()
        if run.id in self.break_after_first:
            raise Unavailable("executor is restarting")
        for step in run.steps:
            step.status = executor_pb2.STEP_STATUS_SUCCEEDED
            step.attempts = 1
            step.output.CopyFrom(struct_pb2.Value(string_value="ok"))
            yield ES.WatchRunResponse(run=run, step=step, kind="step")
        run.status = executor_pb2.RUN_STATUS_SUCCEEDED
        run.finish_time.CopyFrom(_now())
        yield ES.WatchRunResponse(run=run, kind="terminal")


class FakeScheduler(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """PreviewSchedule only: every minute after `after`."""

    async def PreviewSchedule(self, request: Any, context: Any) -> Any:
        if not request.cron.strip():
            raise ValidationFailed([Violation("cron", "must not be empty")])
        start = request.after.seconds if request.HasField("after") else 1_700_000_000
        count = min(request.count or 5, 100)
        if count < 0:
            raise ValidationFailed([Violation("count", "must not be negative")])
        times = [timestamp_pb2.Timestamp(seconds=(start // 60 + i + 1) * 60) for i in range(count)]
        return SS.PreviewScheduleResponse(
            description=f"{request.cron} in {request.timezone or 'UTC'}", next_fire_times=times
        )


@dataclass
class Stack:
    """The running fakes and gateway of a test module."""

    url: str
    signer: TokenSigner
    definitions: FakeDefinitions
    executor: FakeExecutor
    gateway: Gateway
    grpc_address: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: Role = Role.OWNER, workspace: str = "ws-1") -> str:
        """A signed bearer token (cached per role and workspace)."""
        key = f"{role.value}:{workspace}"
        if key not in self.tokens:
            self.tokens[key], _, _ = self.signer.issue(
                subject=f"user:{role.value}", workspace_id=workspace, role=role
            )
        return self.tokens[key]

    def headers(self, role: Role = Role.OWNER, workspace: str = "ws-1") -> dict[str, str]:
        """Authorization header for a token."""
        return {"Authorization": f"Bearer {self.token(role, workspace)}"}

    def spawn(self, **overrides: Any) -> contextlib.AbstractAsyncContextManager[str]:
        """Another live gateway over the same fakes, with settings overridden; yields its URL."""
        return serve_asgi(Gateway(gateway_settings(self.grpc_address, **overrides)))


def gateway_settings(address: str, **overrides: Any) -> GatewaySettings:
    """Settings pointing every upstream at one address."""
    values: dict[str, Any] = {
        "definitions_addr": address,
        "scheduler_addr": address,
        "executor_addr": address,
        "drafter_addr": address,
        "shutdown_grace_seconds": 1.0,
        **overrides,
    }
    return GatewaySettings(**values)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Fake definitions/executor/scheduler behind the real interceptor, and a live gateway."""
    signer = TokenSigner(SECRET)
    definitions = FakeDefinitions()
    executor = FakeExecutor(definitions)
    scheduler = FakeScheduler()
    fakes = GrpcApp(
        name="fakes",
        verifier=signer,
        service_names=[
            DS.DESCRIPTOR.services_by_name["DefinitionsService"].full_name,
            ES.DESCRIPTOR.services_by_name["ExecutorService"].full_name,
            SS.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
            "autom.api.drafter.v1.DrafterService",
        ],
        register=[
            lambda s: definitions_service_pb2_grpc.add_DefinitionsServiceServicer_to_server(
                definitions, s
            ),
            lambda s: executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(executor, s),
            lambda s: scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(
                scheduler, s
            ),
        ],
        grace_seconds=0.5,
    )
    await fakes.start()
    gateway = Gateway(gateway_settings(fakes.address))
    try:
        async with serve_asgi(gateway) as url:
            yield Stack(
                url=url,
                signer=signer,
                definitions=definitions,
                executor=executor,
                gateway=gateway,
                grpc_address=fakes.address,
            )
    finally:
        await fakes.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the live gateway (no proxies from the environment)."""
    async with httpx.AsyncClient(base_url=stack.url, trust_env=False, timeout=10) as c:
        yield c


def grpc_code(status: int) -> grpc.StatusCode:
    """grpc.StatusCode for a numeric code."""
    return next(s for s in grpc.StatusCode if s.value[0] == status)
