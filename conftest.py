"""Suite-wide fixtures: real PostgreSQL and real NATS (embedded unless AUTOM_TEST_* name servers).

Isolation: every service schema is migrated once into a template database; each test gets
its own database cloned from it, and its own JetStream state.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database for one test."""
    name = f"autom_t_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _with_db(pg_server_url, name)
    await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def nats_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a NATS server with JetStream."""
    from autom.devstack.testing import test_nats_url

    with test_nats_url(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture
async def nats_url(nats_server_url: str) -> AsyncIterator[str]:
    """The NATS server with no Autom streams left from an earlier test."""
    import nats

    nc = await nats.connect(nats_server_url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith("AUTOM_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()
    yield nats_server_url


@pytest.fixture
def signing_key() -> str:
    """The deployment's Ed25519 signing key (base64url seed) in the tests."""
    from autom.devstack.testing import TEST_SIGNING_KEY

    return TEST_SIGNING_KEY


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    # litellm otherwise fetches its model price map from the internet on import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
