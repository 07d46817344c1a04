"""Real PostgreSQL and NATS for the test suite: the servers named in the environment or
embedded ones started in a temporary directory.

Start servers from the main thread (session fixtures do): children are tied to the thread
that forks them.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autom.devstack.nats import EmbeddedNats
from autom.devstack.ports import free_port
from autom.devstack.postgres import EmbeddedPostgres, create_database, drop_database, with_database

logger = logging.getLogger(__name__)

DATABASE_URL_ENV = "AUTOM_TEST_DATABASE_URL"
NATS_URL_ENV = "AUTOM_TEST_NATS_URL"


@contextmanager
def test_postgres_url(tmp: Path) -> Iterator[str]:
    """Yield a PostgreSQL server URL: $AUTOM_TEST_DATABASE_URL or an embedded server in `tmp`.

    The embedded server runs with fsync off: test data is disposable.
    """
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        yield external
        return
    server = EmbeddedPostgres(Path(tmp) / "postgres", free_port(), fsync=False)
    with server:
        yield server.url


@contextmanager
def fresh_database(server_url: str, prefix: str = "autom_test") -> Iterator[str]:
    """Yield the URL of a new, randomly named database; drop it (WITH (FORCE)) afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    create_database(server_url, name)
    try:
        yield with_database(server_url, name)
    finally:
        drop_database(server_url, name)


@contextmanager
def test_nats_url(tmp: Path) -> Iterator[str]:
    """Yield a NATS URL: $AUTOM_TEST_NATS_URL or an embedded JetStream server in `tmp`."""
    external = os.environ.get(NATS_URL_ENV)
    if external:
        yield external
        return
    with EmbeddedNats(Path(tmp) / "nats", free_port()) as server:
        yield server.url


# Their names start with "test_"; keep pytest from collecting them where they are imported.
for _helper in (test_postgres_url, test_nats_url):
    _helper.__test__ = False  # type: ignore[attr-defined]
