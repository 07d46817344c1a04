"""Suite-wide fixtures: real PostgreSQL and real NATS (embedded unless AUTOM_TEST_* name servers).

Isolation: every service schema is migrated once into a template database; each test gets
its own database cloned from it, and its own JetStream state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from autom.drafter.testing import ScriptedLLM

# gRPC's fork handlers restart its poller in a child that is about to exec, and the child
# aborts when close_fds closes the poller's epoll fd (grpc/grpc#43055). The suite forks
# servers and service processes while its own gRPC clients run, and never needs gRPC in a
# forked child: turn the handlers off before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

SERVICES_WITH_DB = ("definitions", "scheduler", "executor", "drafter")


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(server_url: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's `postgres` database."""
    from autom.devstack.testing import test_postgres_url

    with test_postgres_url(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> AsyncIterator[str]:
    """A database holding every service's migrated schema, cloned per test."""
    name = f"autom_tmpl_{uuid.uuid4().hex[:10]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    url = _with_db(pg_server_url, name)
    for svc in SERVICES_WITH_DB:
        if importlib.util.find_spec(f"autom.{svc}") is None:
            continue
        if importlib.util.find_spec(f"autom.{svc}.db") is None:
            continue
        module = importlib.import_module(f"autom.{svc}.db")
        await module.migrate(url)
    yield name
    await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Clones:
    """Per-test clones of the template, made ahead of the test that takes one, dropped behind.

    Each CREATE and DROP DATABASE takes about a second on a busy server (a drop waits for a
    checkpoint); worker threads do them while tests run, so a test waits only when no clone
    is ready yet. Threads, not tasks: the event loop does not run during sync tests.
    """

    def __init__(self, server_url: str, template: str) -> None:
        self._server_url = server_url
        self._template = template
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-db")
        self._spare: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def _create(self) -> str:
        name = f"autom_t_{uuid.uuid4().hex[:12]}"
        sql = f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'
        asyncio.run(_admin(self._server_url, sql))
        return name

    def _drop(self, name: str) -> None:
        asyncio.run(_admin(self._server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def take(self) -> str:
        """A fresh clone; the next one starts being made at once."""
        ready, self._spare = self._spare, None
        if ready is None:
            ready = self._workers.submit(self._create)
        self._spare = self._workers.submit(self._create)
        return await asyncio.wrap_future(ready)

    def give_back(self, name: str) -> None:
        """Drop a clone in the background."""
        self._drops.append(self._workers.submit(self._drop, name))

    def close(self) -> None:
        """Wait for every drop, drop the unused spare; errors surface here."""
        if self._spare is not None:
            with contextlib.suppress(Exception):
                self.give_back(self._spare.result())
        self._workers.shutdown(wait=True)
        for drop in self._drops:
            drop.result()


@pytest.fixture(scope="session")
def _clones(pg_server_url: str, template_database: str) -> Iterator[_Clones]:
    clones = _Clones(pg_server_url, template_database)
    yield clones
    clones.close()


@pytest.fixture
async def database_url(pg_server_url: str, _clones: _Clones) -> AsyncIterator[str]:
    """A fresh, fully migrated database for one test."""
    name = await _clones.take()
    yield _with_db(pg_server_url, name)
    _clones.give_back(name)


@pytest.fixture(scope="session")
def nats_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a NATS server with JetStream."""
    from autom.devstack.testing import test_nats_url

    with test_nats_url(tmp_path_factory.mktemp("nats")) as url:
        yield url


async def _drop_autom_streams(nats_server_url: str) -> None:
    import nats

    nc = await nats.connect(nats_server_url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith("AUTOM_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


@pytest.fixture
async def nats_url(nats_server_url: str) -> AsyncIterator[str]:
    """The NATS server with no Autom streams left from an earlier test."""
    await _drop_autom_streams(nats_server_url)
    yield nats_server_url


@pytest.fixture
def signing_key() -> str:
    """The deployment's Ed25519 signing key (base64url seed) in the tests."""
    from autom.devstack.testing import TEST_SIGNING_KEY

    return TEST_SIGNING_KEY


@dataclass
class ServiceStack:
    """The four real services of a test module, wired together, and the scripted model."""

    definitions: str
    scheduler: str
    executor: str
    drafter: str
    llm: ScriptedLLM
    database_url: str
    nats_url: str

    @property
    def addresses(self) -> dict[str, str]:
        """Each service's gRPC address by service name."""
        return {
            "definitions": self.definitions,
            "scheduler": self.scheduler,
            "executor": self.executor,
            "drafter": self.drafter,
        }


async def _serving(address: str) -> None:
    from autom.core.healthcheck import check

    assert await check(address), f"{address} is not ready (gRPC health NOT_SERVING)"


@pytest.fixture(scope="module")
async def service_stack(
    pg_server_url: str, _clones: _Clones, nats_server_url: str
) -> AsyncIterator[ServiceStack]:
    """Definitions, scheduler, executor and drafter (on the scripted model), once per module.

    Tests sharing it keep apart by workspace or automation name. Its own database clone and
    JetStream state: no test of another module sees them.
    """
    from cryptography.fernet import Fernet

    from autom.devstack.eventually import assert_eventually
    from autom.devstack.testing import TEST_SIGNING_KEY, start_service
    from autom.drafter.testing import ScriptedLLM

    await _drop_autom_streams(nats_server_url)
    name = await _clones.take()
    database_url = _with_db(pg_server_url, name)
    async with contextlib.AsyncExitStack() as cleanup:
        # Undone in reverse: the services, the model server, the database.
        cleanup.callback(_clones.give_back, name)
        llm = await cleanup.enter_async_context(ScriptedLLM())

        async def start(service: str, **overrides: Any) -> str:
            # A short grace: the module's last test may leave a stream or a run behind. Quick
            # loop recovery: a consumer started before its stream's owner is soon ready.
            app = await start_service(
                service,
                database_url,
                nats_server_url,
                TEST_SIGNING_KEY,
                shutdown_grace_seconds=1.0,
                loop_backoff_max_seconds=0.2,
                loop_healthy_after_seconds=0.2,
                **overrides,
            )
            cleanup.push_async_callback(app.stop)
            return app.address

        definitions = await start("definitions", secrets_key=Fernet.generate_key().decode())
        scheduler = await start("scheduler", definitions_addr=definitions)
        executor = await start("executor", definitions_addr=definitions)
        drafter = await start(
            "drafter",
            definitions_addr=definitions,
            scheduler_addr=scheduler,
            model="openai/scripted",
            api_key="test",
            api_base=llm.url,
            num_retries=0,
            # The first model call of a process imports much of litellm: seconds when busy.
            timeout_seconds=30.0,
        )
        for address in (definitions, scheduler, executor, drafter):
            await assert_eventually(functools.partial(_serving, address), timeout=60)
        yield ServiceStack(
            definitions=definitions,
            scheduler=scheduler,
            executor=executor,
            drafter=drafter,
            llm=llm,
            database_url=database_url,
            nats_url=nats_server_url,
        )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent


# Tests that mostly wait on processes of their own (outages, supervisors) are marked
# `xdist_group("apart")` and run in a worker of their own under `make test` (pytest-xdist,
# --dist loadgroup); every other test stays in one worker, in file order, sharing the
# session's PostgreSQL, NATS and module stacks.
_FIGURES = "figures"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("main"))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Show a line in the run's summary even on success (from any xdist worker)."""
    return lambda line: request.node.user_properties.append((_FIGURES, line))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        str(value)
        for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
        if report.when == "call"
        for name, value in report.user_properties
        if name == _FIGURES
    ]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    # A stopping consumer first finishes its fetch: shorter fetches make every service the
    # tests stop (and those they start as processes) stop sooner.
    os.environ.setdefault("AUTOM_NATS_FETCH_TIMEOUT_SECONDS", "0.1")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    # litellm otherwise fetches its model price map from the internet on import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
