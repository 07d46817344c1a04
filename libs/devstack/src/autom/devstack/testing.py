"""Real PostgreSQL and NATS for the test suite: the servers named in the environment or
embedded ones started in a temporary directory.

Start servers from the main thread (session fixtures do): children are tied to the thread
that forks them.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autom.core.natsauth import ADMIN_USER, authorization_conf
from autom.devstack.nats import EmbeddedNats, nats_passwords, service_nats_url, with_credentials
from autom.devstack.ports import free_port
from autom.devstack.postgres import EmbeddedPostgres, create_database, drop_database, with_database

if TYPE_CHECKING:
    from autom.core.grpcserver import GrpcApp

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
    with postgres_scratch_dir(tmp) as data_dir:
        server = EmbeddedPostgres(data_dir, free_port(), fsync=False)
        with server:
            yield server.url


@contextmanager
def postgres_scratch_dir(tmp: Path) -> Iterator[Path]:
    """Yield a path for a throwaway cluster: `tmp/postgres`, or one under the system temp
    directory when we are root.

    As root the server runs as another user, who must be able to traverse every parent
    directory; pytest keeps its temp root at mode 0700 and resets it whenever any pytest
    session starts, which would cut a running test server off from its data.
    """
    if os.geteuid() != 0:
        yield Path(tmp) / "postgres"
        return
    scratch = Path(tempfile.mkdtemp(prefix="autom-test-pg-"))
    try:
        yield scratch / "postgres"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    """Yield a NATS URL: $AUTOM_TEST_NATS_URL or an embedded JetStream server in `tmp`.

    The embedded server keeps nats-server's default sync (no fsync per write): test data is
    disposable. It runs with the services' users and permissions as deployed; the URL
    yielded is the admin's (`service_nats_url` gives a service's own).
    """
    external = os.environ.get(NATS_URL_ENV)
    if external:
        yield external
        return
    master = secrets.token_hex(16)
    auth = authorization_conf(nats_passwords(master))
    with EmbeddedNats(
        Path(tmp) / "nats", free_port(), sync_interval=None, authorization=auth
    ) as server:
        yield with_credentials(server.url, ADMIN_USER, master)


# Their names start with "test_"; keep pytest from collecting them where they are imported.
for _helper in (test_postgres_url, test_nats_url):
    _helper.__test__ = False  # type: ignore[attr-defined]


# The test suite's deployment keys: one signing key and a credential per calling service.
TEST_SIGNING_KEY = "dGVzdC1zaWduaW5nLWtleS1vZi10aGUtYXV0b20tc3U"
TEST_CREDENTIALS = {
    "scheduler": "svc.scheduler.test-scheduler-credential-0123456789abcdef",
    "executor": "svc.executor.test-executor-credential-0123456789abcdef",
}


def service_keys(service: str, signing_key: str = TEST_SIGNING_KEY) -> dict[str, str]:
    """Settings keyword arguments holding the keys `service` gets in a deployment.

    Definitions: the private key and the credentials' hashes; scheduler and executor: the
    public key and their own credential; drafter: the public key.
    """
    from autom.core.auth import ServiceCredentials, load_private_key, public_key_text

    if service == "definitions":
        entries = ",".join(ServiceCredentials.entry(c) for c in TEST_CREDENTIALS.values())
        return {"auth_private_key": signing_key, "service_credentials": entries}
    keys = {"auth_public_keys": public_key_text(load_private_key(signing_key))}
    if service in TEST_CREDENTIALS:
        keys["service_credential"] = TEST_CREDENTIALS[service]
    return keys


def service_env(service: str, signing_key: str = TEST_SIGNING_KEY) -> dict[str, str]:
    """`service_keys` as the AUTOM_* environment of a service process."""
    return {f"AUTOM_{k.upper()}": v for k, v in service_keys(service, signing_key).items()}


async def start_service(
    service: str, database_url: str, nats_url: str, signing_key: str, **overrides: Any
) -> GrpcApp:
    """Build and start one real service in-process, with the keys and NATS user it deploys with."""
    # Imported by name: nothing outside a service's own package imports it.
    app_module = importlib.import_module(f"autom.{service}.app")
    settings_module = importlib.import_module(f"autom.{service}.settings")
    settings_cls = next(
        getattr(settings_module, name)
        for name in dir(settings_module)
        if name.endswith("Settings") and name != "ServiceSettings"
    )
    overrides.setdefault("nats_url", service_nats_url(nats_url, service))
    fields = {
        "database_url": database_url,
        "grpc_port": 0,
        **service_keys(service, signing_key),
        **overrides,
    }
    app: GrpcApp = await app_module.build_app(settings_cls(**fields))
    await app.start()
    return app
