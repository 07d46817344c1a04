"""Benchmarks; `make bench` runs them all and prints JSON figures."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# AUTOM_BENCH_NATS_SYNC: the embedded nats-server's sync_interval; "always" (the default,
# as `make run`) fsyncs every write before acking it, "default" keeps nats-server's 2 min.
NATS_SYNC_ENV = "AUTOM_BENCH_NATS_SYNC"


def nats_sync_interval() -> str | None:
    """The sync_interval the embedded nats-server runs with (None: nats-server's default)."""
    value = os.environ.get(NATS_SYNC_ENV, "always")
    return None if value == "default" else value


def durability() -> dict[str, object]:
    """What the figures were measured with: fsync policies of NATS and PostgreSQL."""
    if os.environ.get("AUTOM_BENCH_NATS_URL"):
        nats = "external (unknown)"
    else:
        nats = nats_sync_interval() or "2m (nats-server default: acks before fsync)"
    pg: object = "external (unknown)" if os.environ.get("AUTOM_BENCH_DATABASE_URL") else True
    return {"nats_sync_interval": nats, "postgres_fsync": pg}


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(postgres server url, nats url): from the environment or embedded in a temp dir."""
    from autom.devstack.nats import EmbeddedNats
    from autom.devstack.ports import free_port
    from autom.devstack.postgres import EmbeddedPostgres

    pg_url = os.environ.get("AUTOM_BENCH_DATABASE_URL")
    nats_url = os.environ.get("AUTOM_BENCH_NATS_URL")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autom-bench-")))
        if not pg_url:
            pg = stack.enter_context(EmbeddedPostgres(tmp / "pg", free_port(), fsync=True))
            pg_url = pg.url
        if not nats_url:
            nats_server = stack.enter_context(
                EmbeddedNats(tmp / "nats", free_port(), sync_interval=nats_sync_interval())
            )
            nats_url = nats_server.url
        yield pg_url, nats_url
