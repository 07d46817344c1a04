"""Settings of the `make run` supervisor, read from AUTOM_* environment variables."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """An environment variable holds an unusable value."""


@dataclass(frozen=True, kw_only=True)
class DevConfig:
    """Where the dev stack keeps its data and which addresses it binds."""

    home: Path
    host: str = "127.0.0.1"
    database_url: str | None = None
    nats_url: str | None = None
    pg_port: int = 55432
    nats_port: int = 54222
    definitions_port: int = 50051
    scheduler_port: int = 50052
    executor_port: int = 50053
    drafter_port: int = 50054
    http_port: int = 8080
    # Prometheus /metrics: off unless set; then definitions, scheduler, executor, drafter and
    # the gateway listen on this port and the four after it.
    metrics_base_port: int | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> DevConfig:
        """Read AUTOM_HOME, AUTOM_HOST, AUTOM_*_URL and AUTOM_*_PORT; empty means unset."""
        env = os.environ if environ is None else environ
        base = Path.cwd() if cwd is None else cwd

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def port(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a port number") from None
            if not 1 <= value <= 65535:
                raise ConfigError(f"{name}={value} is outside 1..65535")
            return value

        return cls(
            home=(base / (get("AUTOM_HOME") or ".autom")).absolute(),
            host=get("AUTOM_HOST") or "127.0.0.1",
            database_url=get("AUTOM_DATABASE_URL"),
            nats_url=get("AUTOM_NATS_URL"),
            pg_port=port("AUTOM_PG_PORT", 55432),
            nats_port=port("AUTOM_NATS_PORT", 54222),
            definitions_port=port("AUTOM_DEFINITIONS_PORT", 50051),
            scheduler_port=port("AUTOM_SCHEDULER_PORT", 50052),
            executor_port=port("AUTOM_EXECUTOR_PORT", 50053),
            drafter_port=port("AUTOM_DRAFTER_PORT", 50054),
            http_port=port("AUTOM_HTTP_PORT", 8080),
            metrics_base_port=(
                port("AUTOM_METRICS_BASE_PORT", 0) if get("AUTOM_METRICS_BASE_PORT") else None
            ),
        )


@dataclass(frozen=True)
class DevSecrets:
    """The keys of a development deployment; `service_envs` gives each process only its own."""

    auth_private_key: str
    secrets_key: str
    page_token_key: str
    scheduler_credential: str
    executor_credential: str

    @property
    def auth_public_key(self) -> str:
        """The public key every service verifies tokens with."""
        from autom.core.auth import load_private_key, public_key_text

        return public_key_text(load_private_key(self.auth_private_key))

    @property
    def service_credentials(self) -> str:
        """What the definitions service accepts: hashes of the services' credentials."""
        from autom.core.auth import ServiceCredentials

        creds = (self.scheduler_credential, self.executor_credential)
        return ",".join(ServiceCredentials.entry(c) for c in creds)


SECRETS_FILE = "dev-secrets.json"
DEV_TOKEN_FILE = "dev-token"


def read_dev_token(path: Path) -> str | None:
    """The dev token kept from an earlier run, if any."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    return token or None


def write_dev_token(path: Path, token: str) -> None:
    """Keep the dev token (mode 0600) so the next run reuses it instead of minting another."""
    _write_private(path, token + "\n")


def load_dev_secrets(home: Path, environ: Mapping[str, str] | None = None) -> DevSecrets:
    """AUTOM_AUTH_PRIVATE_KEY / AUTOM_SECRETS_KEY from the environment, else from
    $AUTOM_HOME/dev-secrets.json, generated (mode 0600) on first use with the other keys.
    """
    env = os.environ if environ is None else environ
    values = {key: env.get(var, "") for key, var in _SECRET_VARS.items()}
    values.update({key: "" for key in _GENERATORS if key not in _SECRET_VARS})
    missing = [key for key, value in values.items() if not value]
    if missing:
        path = home / SECRETS_FILE
        stored = _read_secrets(path)
        updated = dict(stored)
        for key in missing:
            updated.setdefault(key, _GENERATORS[key]())
            values[key] = updated[key]
        if updated != stored:
            _write_private(path, json.dumps(updated, indent=2) + "\n")
    found = DevSecrets(**values)
    try:
        found.auth_public_key  # noqa: B018 - fails on a malformed private key
    except ValueError as exc:
        raise ConfigError(f"AUTOM_AUTH_PRIVATE_KEY: {exc}") from None
    return found


_SECRET_VARS = {"auth_private_key": "AUTOM_AUTH_PRIVATE_KEY", "secrets_key": "AUTOM_SECRETS_KEY"}


def _fernet_key() -> str:
    # A Fernet key is the urlsafe base64 of 32 random bytes.
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _private_key() -> str:
    from autom.core.auth import generate_private_key, private_key_text

    return private_key_text(generate_private_key())


def _credential(service: str) -> str:
    from autom.core.auth import ServiceCredentials

    return ServiceCredentials.generate(service)[0]


_GENERATORS: dict[str, Callable[[], str]] = {
    "auth_private_key": _private_key,
    "secrets_key": _fernet_key,
    "page_token_key": lambda: secrets.token_urlsafe(32),
    "scheduler_credential": lambda: _credential("scheduler"),
    "executor_credential": lambda: _credential("executor"),
}


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON; delete it to regenerate") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} does not hold a JSON object; delete it to regenerate")
    return {str(k): str(v) for k, v in loaded.items() if isinstance(v, str) and v}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


NATS_ADMIN_FILE = "nats-admin-password"


def load_nats_admin_password(home: Path) -> str:
    """The embedded nats-server's admin password, generated (mode 0600) on first use.

    Every service's NATS password derives from it (autom.devstack.nats.nats_passwords).
    """
    path = home / NATS_ADMIN_FILE
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if not stored:
        stored = secrets.token_hex(24)
        _write_private(path, stored + "\n")
    return stored
