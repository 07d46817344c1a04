"""Fixtures of the executor unit tests: the engine on real PostgreSQL, definitions in memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from autom.core.db import create_engine
from autom.core.registry import build_catalog
from autom.devstack.testing import service_keys
from autom.executor.actions.base import Actions
from autom.executor.actions.catalog import build_actions
from autom.executor.engine import Engine, RunState
from autom.executor.settings import ExecutorSettings
from autom.executor.sources import Snapshot, StaticDefinitions
from autom.executor.store import NewRun, RunStore, create_pool
from autom.executor.testing import ScriptedModel, serving


@dataclass
class Harness:
    """Runs definitions through the real engine and store, without NATS."""

    store: RunStore
    engine: Engine
    definitions: StaticDefinitions
    settings: ExecutorSettings
    actions: Actions
    lease: float = 30.0
    created: list[str] = field(default_factory=list)

    def configured(self, **settings: Any) -> Harness:
        """The same database and definitions under other executor settings."""
        changed = self.settings.model_copy(update=settings)
        store = RunStore(
            self.store.engine, self.store.pool, max_output_bytes=changed.max_output_bytes
        )
        engine = wire_engine(store, self.actions, self.definitions, changed, self.lease)
        return replace(self, store=store, engine=engine, settings=changed)

    def automation(self, definition: dict[str, Any], *, version: int = 1) -> Snapshot:
        """Register a definition as a new automation."""
        snapshot = Snapshot(
            automation_id=str(uuid.uuid4()),
            workspace_id="ws1",
            version=version,
            definition=definition,
            created_by="user:creator",
        )
        self.definitions.add(snapshot)
        return snapshot

    def new_run(
        self,
        snapshot: Snapshot,
        inputs: dict[str, Any] | None = None,
        *,
        fire_id: str | None = None,
        trigger_id: str = "",
        trigger_type: str = "schedule",
    ) -> NewRun:
        """A run row for a fire of `snapshot`."""
        now = datetime.now(UTC)
        return NewRun(
            id=str(uuid.uuid4()),
            fire_id=fire_id or f"fire-{uuid.uuid4().hex}",
            workspace_id=snapshot.workspace_id,
            automation_id=snapshot.automation_id,
            automation_version=snapshot.version,
            trigger_type=trigger_type,
            trigger_id=trigger_id,
            fire_inputs=inputs or {},
            scheduled_for=now.replace(microsecond=0),
            fired_at=now,
            last_fired_at=None,
            principal="user:creator",
        )

    async def claim(self, new: NewRun) -> RunState:
        """Claim the run as a fresh worker."""
        token = uuid.uuid4().hex
        row = await self.store.claim(new, token=token, owner="test", lease_seconds=self.lease)
        assert row is not None
        snapshot = await self.definitions.get(new.automation_id, new.automation_version)
        return RunState(row=row, token=token, snapshot=snapshot)

    async def run(
        self, definition: dict[str, Any], inputs: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """Execute one fire of `definition` to its terminal state; return the run row."""
        state = await self.claim(self.new_run(self.automation(definition), inputs, **kw))
        await self.engine.execute(state, pending_events=[])
        row = await self.store.get(state.run_id)
        assert row is not None
        return row


def wire_engine(
    store: RunStore,
    actions: Actions,
    definitions: StaticDefinitions,
    settings: ExecutorSettings,
    lease: float,
) -> Engine:
    """The engine as app.py wires it, over the given store."""
    return Engine(
        store=store,
        actions=actions,
        secrets=definitions,
        lease_seconds=lease,
        default_step_timeout=settings.default_step_timeout_seconds,
    )


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    """The engine on a fresh database."""
    settings = ExecutorSettings(
        database_url=database_url, http_allow_cidrs="127.0.0.0/8", **service_keys("executor")
    )
    engine = create_engine(url=database_url, application_name="executor-tests")
    pool = await create_pool(database_url, size=5, application_name="executor-tests")
    store = RunStore(engine, pool, max_output_bytes=settings.max_output_bytes)
    definitions = StaticDefinitions(secrets={"TOKEN": "s3cr3t-value"})
    actions, http = build_actions(build_catalog(plugins=False), settings, None)
    run_engine = wire_engine(store, actions, definitions, settings, 30.0)
    yield Harness(store, run_engine, definitions, settings, actions)
    await http.aclose()
    await pool.close()
    await engine.dispose()


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedModel]:
    """A scripted OpenAI-compatible server on loopback."""
    async with serving(ScriptedModel()) as model:
        yield model


@pytest.fixture
async def agent_harness(
    harness: Harness, llm: ScriptedModel, database_url: str
) -> AsyncIterator[Harness]:
    """The harness with agent_task calling the scripted model (loopback allowed for tools)."""
    settings = ExecutorSettings(
        database_url=database_url,
        auth_public_keys="MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI",
        llm_api_base=f"http://127.0.0.1:{llm.port}/v1",
        llm_api_key="test-key",
        default_model="openai/test-model",
        http_allow_cidrs="127.0.0.0/8",
    )
    actions, http = build_actions(
        build_catalog(plugins=False), settings, None, mcp_servers=harness.definitions
    )
    harness.engine = Engine(
        store=harness.store, actions=actions, secrets=harness.definitions, lease_seconds=30.0
    )
    harness.actions = actions
    yield harness
    await http.aclose()
