"""Fixtures: the scheduler in-process on a real database and NATS, and event helpers."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.common.v1 import definition_pb2
from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.auth import Role, TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.devstack.ports import free_port
from autom.devstack.testing import service_keys
from autom.scheduler.app import build_app
from autom.scheduler.domain.model import AutomationChange, TriggerSpec
from autom.scheduler.service import SchedulerService
from autom.scheduler.settings import SchedulerSettings

StartScheduler = Callable[..., Awaitable[GrpcApp]]


@pytest.fixture
def settings(database_url: str, nats_url: str, signing_key: str) -> SchedulerSettings:
    """Scheduler settings for one test (no resync: there is no definitions service)."""
    return SchedulerSettings(
        database_url=database_url,
        nats_url=nats_url,
        **service_keys("scheduler", signing_key),
        grpc_port=0,
        scheduler_resync_on_start=False,
        # Nothing listens there: a developer's running stack must not answer resyncs.
        definitions_addr=f"127.0.0.1:{free_port()}",
    )


@pytest.fixture
async def engine(settings: SchedulerSettings) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database."""
    engine = create_engine(url=settings.database_url, application_name="scheduler-test")
    yield engine
    await engine.dispose()


@pytest.fixture
def service(engine: AsyncEngine, settings: SchedulerSettings) -> SchedulerService:
    """The use cases without NATS (fires stay in the outbox)."""
    return SchedulerService(engine, settings)


@pytest.fixture
async def start_scheduler(settings: SchedulerSettings) -> AsyncIterator[StartScheduler]:
    """start_scheduler(**overrides) builds and starts a scheduler; all stop at teardown."""
    started: list[GrpcApp] = []

    # The scheduler consumes streams other services own; the tests stand in for them.
    nc = await nats.connect(settings.nats_url)
    try:
        await bus.ensure_streams(
            nc.jetstream(),
            (bus.DEFINITIONS_STREAM, bus.RUNS_STREAM, bus.AUTH_STREAM, bus.DEAD_LETTERS_STREAM),
        )
    finally:
        await nc.close()

    async def start(**overrides: Any) -> GrpcApp:
        app = await build_app(settings.model_copy(update=overrides))
        await app.start()
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        await app.stop()


@pytest.fixture
def signer(signing_key: str) -> TokenSigner:
    """Mints tokens the in-process scheduler accepts."""
    return TokenSigner(signing_key)


@pytest.fixture
def token_for(signer: TokenSigner) -> Callable[..., str]:
    """token_for(role, workspace='default') -> bearer token."""

    def make(role: Role, workspace: str = "default", subject: str = "user:alice") -> str:
        return signer.issue(subject=subject, workspace_id=workspace, role=role)[0]

    return make


# Like the definitions database's sequence: every change made in a test is newer.
_revisions = itertools.count(1000)


def change(
    cron: str | None = "0 9 * * *",
    *,
    automation_id: str = "auto-1",
    version: int = 1,
    revision: int | None = None,
    status: str = "active",
    deleted: bool = False,
    workspace_id: str = "default",
    **config: Any,
) -> AutomationChange:
    """An automation change with one schedule trigger `tick` (none when cron is None).

    Without `revision`, each call is newer than every earlier one.
    """
    triggers = ()
    if cron is not None:
        triggers = (
            TriggerSpec("tick", "schedule", {"cron": cron, **config}, {"repo": "octo/widgets"}),
        )
    return AutomationChange(
        automation_id=automation_id,
        workspace_id=workspace_id,
        version=version,
        revision=next(_revisions) if revision is None else revision,
        status=status,
        deleted=deleted,
        created_by="user:alice",
        triggers=triggers,
    )


def definition_event(
    kind: str,
    *,
    automation_id: str,
    version: int,
    config: dict[str, Any] | None,
    workspace_id: str = "default",
    at: datetime | None = None,
    revision: int | None = None,
) -> events_pb2.DefinitionEvent:
    """A DefinitionEvent as the definitions service publishes it."""
    types = {
        "created": events_pb2.DEFINITION_EVENT_TYPE_CREATED,
        "updated": events_pb2.DEFINITION_EVENT_TYPE_UPDATED,
        "paused": events_pb2.DEFINITION_EVENT_TYPE_PAUSED,
        "resumed": events_pb2.DEFINITION_EVENT_TYPE_RESUMED,
        "archived": events_pb2.DEFINITION_EVENT_TYPE_ARCHIVED,
        "deleted": events_pb2.DEFINITION_EVENT_TYPE_DELETED,
    }
    triggers = []
    if config is not None and kind != "deleted":
        triggers.append(
            definition_pb2.Trigger(
                id="tick",
                type="schedule",
                config=dict_to_struct(config),
                inputs=dict_to_struct({"repo": "octo/widgets"}),
            )
        )
    return events_pb2.DefinitionEvent(
        event_id=str(uuid.uuid4()),
        type=types[kind],
        workspace_id=workspace_id,
        automation_id=automation_id,
        version=version,
        active=kind in ("created", "updated", "resumed"),
        triggers=triggers,
        created_by="user:alice",
        occur_time=to_timestamp(at or datetime.now(UTC)),
        name=f"automation-{automation_id}",
        revision=next(_revisions) if revision is None else revision,
    )


@pytest.fixture
def make_change() -> Callable[..., AutomationChange]:
    """The `change` helper as a fixture (test modules cannot import conftest)."""
    return change


@pytest.fixture
def make_event() -> Callable[..., events_pb2.DefinitionEvent]:
    """The `definition_event` helper as a fixture."""
    return definition_event
