"""The suite helpers: servers from the environment or embedded ones, throwaway databases."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import nats
import pytest

from autom.devstack import testing
from autom.devstack.postgres import database_exists


async def test_fresh_database_is_created_then_dropped_despite_open_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(testing.DATABASE_URL_ENV, raising=False)
    with testing.test_postgres_url(tmp_path) as server_url:
        with testing.fresh_database(server_url, prefix="devstack") as url:
            name = url.rsplit("/", 1)[1]
            assert name.startswith("devstack_")
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT current_database()") == name
        # The session was still open: the drop is WITH (FORCE).
        assert not database_exists(server_url, name)
        conn.terminate()

        with (
            pytest.raises(RuntimeError, match="boom"),
            testing.fresh_database(server_url) as url,
        ):
            name = url.rsplit("/", 1)[1]
            raise RuntimeError("boom")
        assert not database_exists(server_url, name)


async def test_embedded_nats_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(testing.NATS_URL_ENV, raising=False)
    with testing.test_nats_url(tmp_path) as url:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(name="T", subjects=["t.>"])
        await nc.close()


def test_servers_named_in_the_environment_are_used_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(testing.DATABASE_URL_ENV, "postgresql://u@elsewhere:5432/postgres")
    monkeypatch.setenv(testing.NATS_URL_ENV, "nats://elsewhere:4222")
    with testing.test_postgres_url(tmp_path) as pg, testing.test_nats_url(tmp_path) as nt:
        assert (pg, nt) == ("postgresql://u@elsewhere:5432/postgres", "nats://elsewhere:4222")
    assert list(tmp_path.iterdir()) == []


def test_helpers_are_not_collected_as_tests() -> None:
    assert testing.test_postgres_url.__test__ is False  # type: ignore[attr-defined]
    assert testing.test_nats_url.__test__ is False  # type: ignore[attr-defined]
