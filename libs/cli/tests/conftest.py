"""In-process fake services behind the real interceptor, and a runner for the `autom` CLI."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from typer.testing import CliRunner, Result

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import (
    definitions_pb2,
    definitions_service_pb2,
    definitions_service_pb2_grpc,
)
from autom.api.drafter.v1 import drafter_pb2, drafter_service_pb2, drafter_service_pb2_grpc
from autom.api.executor.v1 import executor_pb2, executor_service_pb2, executor_service_pb2_grpc
from autom.api.scheduler.v1 import (
    scheduler_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
)
from autom.cli.app import app
from autom.core.auth import Role, TokenSigner, current_principal
from autom.core.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    NotFound,
    ValidationFailed,
    Violation,
)
from autom.core.grpcserver import GrpcApp
from autom.devstack.testing import TEST_SIGNING_KEY

SECRET = TEST_SIGNING_KEY
DS = definitions_service_pb2
ES = executor_service_pb2
SS = scheduler_service_pb2
RS = drafter_service_pb2
E = executor_pb2


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def violations_of(definition: definition_pb2.AutomationDefinition) -> list[Violation]:
    """A small stand-in for the definitions validator."""
    out = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", definition.name):
        out.append(Violation("name", "must match ^[a-z0-9][a-z0-9_-]{0,62}$"))
    seen: set[str] = set()
    steps = [("plan", s) for s in definition.plan] + [
        ("execution.on_failure", s) for s in definition.execution.on_failure
    ]
    counters: dict[str, int] = {}
    for prefix, step in steps:
        i = counters.get(prefix, 0)
        counters[prefix] = i + 1
        if not re.fullmatch(r"[a-z][a-z0-9_]*", step.id):
            out.append(Violation(f"{prefix}[{i}].id", "must match ^[a-z][a-z0-9_]*$"))
        elif step.id in seen:
            out.append(Violation(f"{prefix}[{i}].id", f"duplicate step id {step.id!r}"))
        seen.add(step.id)
        if not step.action:
            out.append(Violation(f"{prefix}[{i}].action", "is required"))
    return out


class Definitions(definitions_service_pb2_grpc.DefinitionsServiceServicer):
    """Automations and tokens in memory."""

    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer
        self.automations: dict[str, definitions_pb2.Automation] = {}
        self.tokens: dict[str, definitions_pb2.ApiToken] = {}

    def find(self, key: str) -> definitions_pb2.Automation:
        for a in self.automations.values():
            if key in (a.id, a.name):
                return a
        raise NotFound("automation", key)

    async def ValidateDefinition(self, request: Any, context: Any) -> Any:
        found = violations_of(request.definition)
        return DS.ValidateDefinitionResponse(
            valid=not found,
            violations=[
                definition_pb2.FieldViolation(field=v.field, description=v.description)
                for v in found
            ],
        )

    async def CreateAutomation(self, request: Any, context: Any) -> Any:
        found = violations_of(request.definition)
        if found:
            raise ValidationFailed(
                [Violation(f"definition.{v.field}", v.description) for v in found]
            )
        if any(a.name == request.definition.name for a in self.automations.values()):
            raise AlreadyExists(f"automation {request.definition.name!r} already exists")
        a = definitions_pb2.Automation(
            id=str(uuid.uuid4()),
            workspace_id=current_principal().workspace_id,
            name=request.definition.name,
            status=2 if request.paused else 1,
            version=1,
            definition=request.definition,
            created_by=current_principal().subject,
            create_time=_now(),
            update_time=_now(),
        )
        self.automations[a.id] = a
        return DS.CreateAutomationResponse(automation=a)

    async def GetAutomation(self, request: Any, context: Any) -> Any:
        return DS.GetAutomationResponse(automation=self.find(request.automation_id))

    async def ListAutomations(self, request: Any, context: Any) -> Any:
        items = sorted(self.automations.values(), key=lambda a: a.name)
        if request.status:
            items = [a for a in items if a.status == request.status]
        return DS.ListAutomationsResponse(automations=items)

    async def UpdateAutomation(self, request: Any, context: Any) -> Any:
        a = self.find(request.automation_id)
        if request.version != a.version:
            raise Conflict(f"version {request.version} is stale; the automation is at {a.version}")
        a.definition.CopyFrom(request.definition)
        a.version += 1
        return DS.UpdateAutomationResponse(automation=a)

    async def ListAutomationVersions(self, request: Any, context: Any) -> Any:
        a = self.find(request.automation_id)
        versions = [
            definitions_pb2.AutomationVersion(
                automation_id=a.id, version=v, definition=a.definition, created_by=a.created_by
            )
            for v in range(a.version, 0, -1)
        ]
        return DS.ListAutomationVersionsResponse(versions=versions)

    async def PauseAutomation(self, request: Any, context: Any) -> Any:
        a = self.find(request.automation_id)
        a.status, a.pause_note = 2, request.note
        return DS.PauseAutomationResponse(automation=a)

    async def ResumeAutomation(self, request: Any, context: Any) -> Any:
        a = self.find(request.automation_id)
        a.status = 1
        return DS.ResumeAutomationResponse(automation=a)

    async def ArchiveAutomation(self, request: Any, context: Any) -> Any:
        a = self.find(request.automation_id)
        a.status = 3
        return DS.ArchiveAutomationResponse(automation=a)

    async def DeleteAutomation(self, request: Any, context: Any) -> Any:
        del self.automations[self.find(request.automation_id).id]
        return DS.DeleteAutomationResponse()

    async def WhoAmI(self, request: Any, context: Any) -> Any:
        p = current_principal()
        return DS.WhoAmIResponse(
            principal=p.subject,
            workspace_id=p.workspace_id,
            role=f"ROLE_{p.role.value.upper()}",
            token_id=p.token_id,
        )

    async def CreateApiToken(self, request: Any, context: Any) -> Any:
        role = Role(definitions_pb2.Role.Name(request.role).removeprefix("ROLE_").lower())
        secret, token_id, exp = self.signer.issue(
            subject=request.principal,
            workspace_id=current_principal().workspace_id,
            role=role,
            ttl_seconds=request.ttl_seconds or 3600,
        )
        token = definitions_pb2.ApiToken(
            id=token_id,
            workspace_id=current_principal().workspace_id,
            principal=request.principal,
            role=request.role,
            name=request.name,
            create_time=_now(),
            expire_time=timestamp_pb2.Timestamp(seconds=exp),
        )
        self.tokens[token_id] = token
        return DS.CreateApiTokenResponse(token=token, secret=secret)

    async def ListApiTokens(self, request: Any, context: Any) -> Any:
        return DS.ListApiTokensResponse(tokens=list(self.tokens.values()))

    async def RevokeApiToken(self, request: Any, context: Any) -> Any:
        token = self.tokens.get(request.token_id)
        if token is None:
            raise NotFound("token", request.token_id)
        token.revoke_time.CopyFrom(_now())
        return DS.RevokeApiTokenResponse(token=token)


class Executor(executor_service_pb2_grpc.ExecutorServiceServicer):
    """Runs whose steps succeed, except steps whose action is `fail`."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self.runs: dict[str, E.Run] = {}

    def _run(self, run_id: str) -> E.Run:
        if run_id not in self.runs:
            raise NotFound("run", run_id)
        return self.runs[run_id]

    def _new_run(
        self, automation: definitions_pb2.Automation, inputs: Any, retry_of: str = ""
    ) -> E.Run:
        run = E.Run(
            id=str(uuid.uuid4()),
            automation_id=automation.id,
            automation_version=automation.version,
            trigger_type="retry" if retry_of else "manual",
            status=E.RUN_STATUS_PENDING,
            inputs=inputs,
            create_time=_now(),
            retry_of_run_id=retry_of,
            principal=current_principal().subject,
        )
        for step in automation.definition.plan:
            run.steps.add(
                step_id=step.id, action=step.action, status=E.STEP_STATUS_PENDING, phase="plan"
            )
        self.runs[run.id] = run
        return run

    async def StartRun(self, request: Any, context: Any) -> Any:
        automation = self.definitions.find(request.automation_id)
        return ES.StartRunResponse(run=self._new_run(automation, request.inputs))

    async def GetRun(self, request: Any, context: Any) -> Any:
        return ES.GetRunResponse(run=self._run(request.run_id))

    async def ListRuns(self, request: Any, context: Any) -> Any:
        runs = list(self.runs.values())
        if request.status:
            runs = [r for r in runs if r.status == request.status]
        return ES.ListRunsResponse(runs=runs)

    async def CancelRun(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id)
        if run.status in (E.RUN_STATUS_PENDING, E.RUN_STATUS_RUNNING):
            run.status = E.RUN_STATUS_CANCELLED
        return ES.CancelRunResponse(run=run)

    async def RetryRun(self, request: Any, context: Any) -> Any:
        old = self._run(request.run_id)
        if old.status != E.RUN_STATUS_FAILED:
            raise FailedPrecondition("only failed runs can be retried")
        automation = self.definitions.find(old.automation_id)
        return ES.RetryRunResponse(run=self._new_run(automation, old.inputs, retry_of=old.id))

    async def WatchRun(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id)
        run.status = E.RUN_STATUS_RUNNING
        run.start_time.CopyFrom(_now())
        yield ES.WatchRunResponse(run=run, kind="snapshot")
        failed = False
        for step in run.steps:
            if failed:
                step.status = E.STEP_STATUS_SKIPPED
                yield ES.WatchRunResponse(run=run, step=step, kind="step")
                continue
            step.status = E.STEP_STATUS_RUNNING
            step.start_time.CopyFrom(_now())
            yield ES.WatchRunResponse(run=run, step=step, kind="step")
            step.attempts = 1
            step.finish_time.CopyFrom(_now())
            if step.action == "fail":
                step.status = E.STEP_STATUS_FAILED
                step.error.CopyFrom(
                    E.ErrorDetail(type="StepFailed", message="the step was told to fail")
                )
                failed = True
            else:
                step.status = E.STEP_STATUS_SUCCEEDED
                step.output.CopyFrom(struct_pb2.Value(string_value="ok"))
            yield ES.WatchRunResponse(run=run, step=step, kind="step")
        run.status = E.RUN_STATUS_FAILED if failed else E.RUN_STATUS_SUCCEEDED
        if failed:
            run.error.CopyFrom(E.ErrorDetail(type="StepFailed", message="step failed"))
        run.finish_time.CopyFrom(_now())
        yield ES.WatchRunResponse(run=run, kind="terminal")


class Scheduler(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """Preview and a fixed schedule list."""

    async def PreviewSchedule(self, request: Any, context: Any) -> Any:
        found = []
        if len(request.cron.split()) not in (5, 6) and not request.cron.startswith("@"):
            found.append(Violation("cron", "must have 5 or 6 fields or be a macro"))
        if request.timezone not in ("UTC", "Europe/Zurich", "Europe/Berlin"):
            found.append(Violation("timezone", f"unknown time zone {request.timezone!r}"))
        if found:
            raise ValidationFailed(found)
        base = 1_743_289_200  # 2025-03-30 00:00 Europe/Zurich, the DST gap day
        times = [
            timestamp_pb2.Timestamp(seconds=base + 3600 * i) for i in range(1, request.count + 1)
        ]
        return SS.PreviewScheduleResponse(
            description=(
                f"At {request.cron}, {request.timezone} "
                f"(on_missing={request.on_missing or 'shift'})"
            ),
            next_fire_times=times,
        )

    async def ListSchedules(self, request: Any, context: Any) -> Any:
        return SS.ListSchedulesResponse(
            schedules=[
                scheduler_pb2.Schedule(
                    id="a1:schedule_0",
                    automation_id="a1",
                    cron="0 9 * * 1",
                    timezone="Europe/Zurich",
                    enabled=True,
                    description="At 09:00 on Monday, Europe/Zurich",
                    next_fire_time=timestamp_pb2.Timestamp(seconds=1_743_404_400),
                )
            ]
        )


class Drafter(drafter_service_pb2_grpc.DrafterServiceServicer):
    """Drafts a heartbeat-like automation from any intent; approving creates it."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self.drafts: dict[str, drafter_pb2.Draft] = {}

    def _revision(self, draft: drafter_pb2.Draft, instruction: str, name: str) -> None:
        definition = definition_pb2.AutomationDefinition(
            name=name,
            description=instruction,
            plan=[definition_pb2.Step(id="beat", action="log")],
        )
        draft.revisions.add(
            number=len(draft.revisions) + 1,
            instruction=instruction,
            status=drafter_pb2.DRAFT_STATUS_PENDING,
            definition=definition,
            preview=drafter_pb2.Preview(
                triggers=[drafter_pb2.TriggerPreview(index=0, description="Every minute, UTC")],
                steps=[drafter_pb2.StepPreview(id="beat", action="log")],
                json=json.dumps({"name": name}),
            ),
        )
        draft.status = drafter_pb2.DRAFT_STATUS_PENDING

    async def DraftAutomation(self, request: Any, context: Any) -> Any:
        draft = drafter_pb2.Draft(
            id=f"d-{len(self.drafts) + 1}", intent=request.intent, timezone=request.timezone
        )
        if "vague" in request.intent:
            draft.status = drafter_pb2.DRAFT_STATUS_NEEDS_CLARIFICATION
            draft.revisions.add(
                number=1,
                instruction=request.intent,
                status=drafter_pb2.DRAFT_STATUS_NEEDS_CLARIFICATION,
                questions=["Which time zone?"],
            )
        else:
            self._revision(draft, request.intent, f"drafted-{len(self.drafts) + 1}")
        self.drafts[draft.id] = draft
        return RS.DraftAutomationResponse(draft=draft)

    async def RefineDraft(self, request: Any, context: Any) -> Any:
        draft = self.drafts[request.draft_id]
        self._revision(draft, request.instruction, f"refined-{request.draft_id}")
        return RS.RefineDraftResponse(draft=draft)

    async def GetDraft(self, request: Any, context: Any) -> Any:
        if request.draft_id not in self.drafts:
            raise NotFound("draft", request.draft_id)
        return RS.GetDraftResponse(draft=self.drafts[request.draft_id])

    async def ApproveDraft(self, request: Any, context: Any) -> Any:
        draft = self.drafts[request.draft_id]
        if request.expected_revision != len(draft.revisions):
            raise Conflict("the draft has a newer revision")
        response = await self.definitions.CreateAutomation(
            DS.CreateAutomationRequest(definition=draft.revisions[-1].definition), context
        )
        draft.status = drafter_pb2.DRAFT_STATUS_APPROVED
        draft.automation_id = response.automation.id
        return RS.ApproveDraftResponse(
            draft=draft, automation_id=response.automation.id, automation_version=1
        )

    async def RejectDraft(self, request: Any, context: Any) -> Any:
        draft = self.drafts[request.draft_id]
        draft.status = drafter_pb2.DRAFT_STATUS_REJECTED
        draft.reject_reason = request.reason
        return RS.RejectDraftResponse(draft=draft)


@dataclass
class Fakes:
    """The fake services of a test module and how to reach them."""

    address: str
    signer: TokenSigner
    definitions: Definitions
    executor: Executor
    drafter: Drafter

    def token(self, role: Role = Role.OWNER) -> str:
        """A signed token for the test workspace."""
        token, _, _ = self.signer.issue(
            subject=f"user:{role.value}", workspace_id="ws-cli", role=role
        )
        return token


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[Fakes]:
    """All four fake services on one in-process gRPC server with the real interceptor."""
    signer = TokenSigner(SECRET)
    definitions = Definitions(signer)
    executor = Executor(definitions)
    drafter = Drafter(definitions)
    scheduler = Scheduler()
    server = GrpcApp(
        name="cli-fakes",
        verifier=signer,
        service_names=[
            "autom.api.definitions.v1.DefinitionsService",
            "autom.api.executor.v1.ExecutorService",
            "autom.api.scheduler.v1.SchedulerService",
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
            lambda s: drafter_service_pb2_grpc.add_DrafterServiceServicer_to_server(drafter, s),
        ],
        grace_seconds=0.5,
    )
    await server.start()
    try:
        yield Fakes(server.address, signer, definitions, executor, drafter)
    finally:
        await server.stop()


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(fakes: Fakes, tmp_path: Path) -> Cli:
    """Run `autom <args>` against the fakes (in a worker thread: the servers need this loop)."""
    runner = CliRunner()
    base_env = {
        "AUTOM_TOKEN": fakes.token(),
        "AUTOM_CONFIG": str(tmp_path / "config.json"),
        "COLUMNS": "160",
        "NO_COLOR": "1",
        **{
            f"AUTOM_{s}_ADDR": fakes.address
            for s in ("DEFINITIONS", "SCHEDULER", "EXECUTOR", "DRAFTER")
        },
    }

    async def run(
        *args: str, env: dict[str, str | None] | None = None, input: str | None = None
    ) -> Result:
        merged = {**base_env, **(env or {})}
        return await asyncio.to_thread(
            runner.invoke, app, list(args), env=merged, input=input, catch_exceptions=False
        )

    return run
