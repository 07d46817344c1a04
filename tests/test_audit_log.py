"""The audit log over real gRPC and HTTP: every mutating call of every service is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import audit_pb2, definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.drafter.v1 import drafter_service_pb2 as rpb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as rgrpc
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as sgrpc
from autom.cli.app import app as cli_app
from autom.cli.errors import ExitCode
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import channel
from autom.core.protoconv import to_timestamp
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.drafter.testing import ScriptedLLM
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings

SECRET_VALUE = "sk-live-NEVER-IN-THE-AUDIT-LOG-7f3a"

HOURLY: dict[str, Any] = {
    "name": "hourly-log",
    "triggers": [{"type": "schedule", "config": {"cron": "0 * * * *", "timezone": "UTC"}}],
    "plan": [{"id": "hello", "action": "log", "params": {"message": "hi"}}],
}
# Manual runs that stay active until cancelled.
SLOW: dict[str, Any] = {
    "name": "slow",
    "plan": [{"id": "nap", "action": "wait", "params": {"duration": "60s"}}],
}
DRAFTED: dict[str, Any] = {
    "name": "drafted-log",
    "triggers": [{"type": "schedule", "config": {"cron": "0 8 * * 1-5", "timezone": "UTC"}}],
    "plan": [{"id": "hello", "action": "log", "params": {"message": "hi"}}],
}


def _definition(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


@contextlib.asynccontextmanager
async def _gateway(addresses: dict[str, str]) -> AsyncIterator[str]:
    settings = GatewaySettings(
        definitions_addr=addresses["definitions"],
        scheduler_addr=addresses["scheduler"],
        executor_addr=addresses["executor"],
        drafter_addr=addresses["drafter"],
        shutdown_grace_seconds=1.0,
    )
    async with serve_asgi(Gateway(settings)) as url:
        yield url


async def test_every_mutation_is_recorded_with_actor_token_and_request_id(
    start_app: Any, signing_key: str, database_url: str
) -> None:
    signer = TokenSigner(signing_key)
    owner_token, owner_jti, _ = signer.issue(
        subject="user:owner", workspace_id="default", role=Role.OWNER
    )
    editor_token, editor_jti, _ = signer.issue(
        subject="user:editor", workspace_id="default", role=Role.EDITOR
    )
    viewer_token, _, _ = signer.issue(
        subject="user:viewer", workspace_id="default", role=Role.VIEWER
    )
    started = datetime.now(UTC)

    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    scheduler = await start_app("scheduler", definitions_addr=definitions.address)
    executor = await start_app("executor", definitions_addr=definitions.address)
    async with ScriptedLLM() as llm:
        drafter = await start_app(
            "drafter",
            definitions_addr=definitions.address,
            scheduler_addr=scheduler.address,
            model="openai/gpt-4o-mini",
            api_key="test",
            api_base=llm.url,
            num_retries=0,
            timeout_seconds=30.0,
        )
        defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
        as_editor = dgrpc.DefinitionsServiceStub(channel(definitions.address, editor_token))
        as_viewer = dgrpc.DefinitionsServiceStub(channel(definitions.address, viewer_token))
        sched = sgrpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
        runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
        drafts = rgrpc.DrafterServiceStub(channel(drafter.address, owner_token))

        # Automations: create (with an x-request-id), update, pause, resume, archive, delete.
        hourly = (
            await defs.CreateAutomation(
                dpb.CreateAutomationRequest(definition=_definition(HOURLY)),
                metadata=(("x-request-id", "req-create-hourly"),),
            )
        ).automation
        updated = (
            await defs.UpdateAutomation(
                dpb.UpdateAutomationRequest(
                    automation_id=hourly.id,
                    version=1,
                    definition=_definition({**HOURLY, "description": "v2"}),
                    request_id="idem-update-1",
                )
            )
        ).automation
        assert updated.version == 2
        await defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=hourly.id))
        await defs.ResumeAutomation(dpb.ResumeAutomationRequest(automation_id=hourly.id))
        slow = (
            await as_editor.CreateAutomation(
                dpb.CreateAutomationRequest(definition=_definition(SLOW))
            )
        ).automation
        doomed = (
            await defs.CreateAutomation(
                dpb.CreateAutomationRequest(definition=_definition({**SLOW, "name": "doomed"}))
            )
        ).automation
        await defs.ArchiveAutomation(dpb.ArchiveAutomationRequest(automation_id=doomed.id))
        await defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=doomed.id))

        # Members, tokens, secrets.
        await defs.SetMember(
            dpb.SetMemberRequest(principal="user:bob", role=definitions_pb2.ROLE_EDITOR)
        )
        token = (
            await defs.CreateApiToken(dpb.CreateApiTokenRequest(principal="user:bob", name="ci"))
        ).token
        await defs.RevokeApiToken(dpb.RevokeApiTokenRequest(token_id=token.id))
        await defs.RemoveMember(dpb.RemoveMemberRequest(principal="user:bob"))
        await defs.SetSecret(dpb.SetSecretRequest(name="API_KEY", value=SECRET_VALUE))
        await defs.DeleteSecret(dpb.DeleteSecretRequest(name="API_KEY"))

        # Runs: start, cancel, retry (then cancel the retry so nothing is left waiting).
        run = (await runs.StartRun(epb.StartRunRequest(automation_id=slow.id))).run
        await runs.CancelRun(epb.CancelRunRequest(run_id=run.id))
        retried = (await runs.RetryRun(epb.RetryRunRequest(run_id=run.id))).run
        await runs.CancelRun(epb.CancelRunRequest(run_id=retried.id))

        # Schedules admin: trigger now, backfill, remove.
        async def schedule_id() -> str:
            listed = await sched.ListSchedules(spb.ListSchedulesRequest(automation_id=hourly.id))
            assert listed.schedules
            return str(listed.schedules[0].id)

        sid = await assert_eventually(schedule_id)
        await sched.TriggerNow(spb.TriggerNowRequest(schedule_id=sid))
        now = datetime.now(UTC)
        await sched.Backfill(
            spb.BackfillRequest(
                schedule_id=sid,
                start_time=to_timestamp(now - timedelta(hours=2)),
                end_time=to_timestamp(now),
            )
        )
        await sched.RemoveSchedule(spb.RemoveScheduleRequest(schedule_id=sid))

        # Drafts: one approved, one rejected.
        llm.reply({"definition": DRAFTED})
        approved = (
            await drafts.DraftAutomation(rpb.DraftAutomationRequest(intent="weekday log"))
        ).draft
        await drafts.ApproveDraft(rpb.ApproveDraftRequest(draft_id=approved.id))
        llm.reply({"definition": {**DRAFTED, "name": "drafted-other"}})
        rejected = (
            await drafts.DraftAutomation(rpb.DraftAutomationRequest(intent="weekday log 2"))
        ).draft
        await drafts.RejectDraft(rpb.RejectDraftRequest(draft_id=rejected.id, reason="no"))

        expected = {
            "automation.create", "automation.update", "automation.pause", "automation.resume",
            "automation.archive", "automation.delete", "member.set", "member.remove",
            "token.create", "token.revoke", "secret.set", "secret.delete", "run.start",
            "run.cancel", "run.retry", "schedule.trigger", "schedule.backfill",
            "schedule.remove", "draft.approve", "draft.reject",
        }  # fmt: skip

        async def everything() -> list[Any]:
            events: list[Any] = []
            token = ""
            while True:
                page = await defs.ListAuditEvents(
                    audit_pb2.ListAuditEventsRequest(page_size=7, page_token=token)
                )
                events.extend(page.events)
                token = page.next_page_token
                if not token:
                    break
            missing = expected - {e.action for e in events}
            assert not missing, missing
            return events

        events = await assert_eventually(everything, timeout=20)
        times = [e.occur_time.ToDatetime() for e in events]
        assert times == sorted(times, reverse=True), "newest first, across pages"
        assert len({e.event_id for e in events}) == len(events)
        for e in events:
            assert e.workspace_id == "default"
            assert e.actor in ("user:owner", "user:editor"), e
            assert e.token_id == (owner_jti if e.actor == "user:owner" else editor_jti), e
            assert e.target_id, e
        by_action = {e.action: e for e in events}
        assert {e.service for e in events} == {"definitions", "scheduler", "executor", "drafter"}
        create = next(
            e for e in events if e.action == "automation.create" and e.target_id == hourly.id
        )
        assert create.request_id == "req-create-hourly"
        assert (create.version_before, create.version_after) == (0, 1)
        update = by_action["automation.update"]
        assert (update.target_id, update.version_before, update.version_after) == (hourly.id, 1, 2)
        assert update.request_id == "idem-update-1"
        assert by_action["automation.delete"].version_after == 0
        assert by_action["secret.set"].target_id == "API_KEY"
        assert by_action["run.retry"].details["retry_of_run_id"] == run.id
        assert by_action["schedule.remove"].target_id == sid
        assert by_action["draft.approve"].target_id == approved.id
        assert by_action["member.set"].details["role"] == "editor"

        # A secret's value appears nowhere in the log, in any field.
        for e in events:
            assert SECRET_VALUE not in str(e), e
            assert SECRET_VALUE.encode() not in e.SerializeToString()

        # Filters: actor, target, action and time.
        by_editor = await defs.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(actor="user:editor")
        )
        assert [(e.action, e.target_id) for e in by_editor.events] == [
            ("automation.create", slow.id)
        ]
        on_run = await defs.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(target_type="run", target_id=run.id)
        )
        assert sorted(e.action for e in on_run.events) == ["run.cancel", "run.start"]
        later = await defs.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(start_time=to_timestamp(datetime.now(UTC)))
        )
        assert list(later.events) == []
        window = await defs.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(
                start_time=to_timestamp(started - timedelta(seconds=1)),
                end_time=to_timestamp(create.occur_time.ToDatetime(tzinfo=UTC)),
            )
        )
        assert list(window.events) == []

        # Owners only.
        for stub in (as_editor, as_viewer):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListAuditEvents(audit_pb2.ListAuditEventsRequest())
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Over HTTP through the gateway, with the same filters and the same rule.
        addresses = {
            "definitions": definitions.address,
            "scheduler": scheduler.address,
            "executor": executor.address,
            "drafter": drafter.address,
        }
        async with (
            _gateway(addresses) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            r = await http.get(
                "/v1/audit",
                params={"targetType": "secret", "targetId": "API_KEY"},
                headers={"Authorization": f"Bearer {owner_token}"},
            )
            assert r.status_code == 200, r.text
            assert SECRET_VALUE not in r.text
            body = r.json()
            assert sorted(e["action"] for e in body["events"]) == [
                "secret.delete",
                "secret.set",
            ]
            assert {e["tokenId"] for e in body["events"]} == {owner_jti}
            r = await http.get(
                "/v1/audit",
                params={"actor": "user:editor"},
                headers={"Authorization": f"Bearer {owner_token}"},
            )
            assert [e["targetId"] for e in r.json()["events"]] == [slow.id]
            r = await http.get(
                "/v1/audit",
                params={"actor": "user:editor", "startTime": "2999-01-01T00:00:00Z"},
                headers={"Authorization": f"Bearer {owner_token}"},
            )
            assert r.status_code == 200, r.text
            assert r.json().get("events", []) == []
            r = await http.get("/v1/audit", headers={"Authorization": f"Bearer {editor_token}"})
            assert r.status_code == 403, r.text

    # Append-only in the database itself, whoever connects.
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        for statement in (
            "UPDATE definitions.audit_events SET actor = 'user:mallory'",
            "DELETE FROM definitions.audit_events",
            "TRUNCATE definitions.audit_events",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def test_autom_audit_lists_filtered_entries_for_owners_only(
    start_app: Any, signing_key: str, tmp_path: Path
) -> None:
    signer = TokenSigner(signing_key)
    owner_token, owner_jti, _ = signer.issue(
        subject="user:owner", workspace_id="default", role=Role.OWNER
    )
    viewer_token = signer.issue(subject="user:viewer", workspace_id="default", role=Role.VIEWER)[0]
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    await defs.SetSecret(dpb.SetSecretRequest(name="API_KEY", value=SECRET_VALUE))
    created = (
        await defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=_definition(SLOW), request_id="cli-create-1")
        )
    ).automation
    runner = CliRunner()

    async def autom(token: str, *args: str) -> Result:
        env = {
            "AUTOM_TOKEN": token,
            "AUTOM_CONFIG": str(tmp_path / "config.json"),
            "AUTOM_DEFINITIONS_ADDR": definitions.address,
            "COLUMNS": "250",
            "NO_COLOR": "1",
        }
        return await asyncio.to_thread(
            runner.invoke, cli_app, ["audit", *args], env=env, catch_exceptions=False
        )

    table = await autom(owner_token)
    assert table.exit_code == 0, table.output
    assert "secret.set" in table.output and "automation.create" in table.output
    assert owner_jti in table.output and "cli-create-1" in table.output
    assert SECRET_VALUE not in table.output
    only = await autom(owner_token, "--target-type", "automation", "--json")
    assert only.exit_code == 0, only.output
    events = json.loads(only.output)["events"]
    assert [(e["action"], e["targetId"]) for e in events] == [("automation.create", created.id)]
    none = await autom(owner_token, "--actor", "user:nobody", "--json")
    assert json.loads(none.output).get("events", []) == []
    future = await autom(owner_token, "--since", "2999-01-01T00:00:00Z", "--json")
    assert json.loads(future.output).get("events", []) == []
    denied = await autom(viewer_token)
    assert denied.exit_code == ExitCode.AUTH, denied.output
