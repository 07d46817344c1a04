"""Settings of the `make run` supervisor, read from AUTOM_* environment variables."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
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
    """The secrets every service shares in development."""

    auth_secret: str
    secrets_key: str


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
    """AUTOM_AUTH_SECRET / AUTOM_SECRETS_KEY from the environment, else from
    $AUTOM_HOME/dev-secrets.json, generated (mode 0600) on first use.
    """
    env = os.environ if environ is None else environ
    values = {key: env.get(var, "") for key, var in _SECRET_VARS.items()}
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
    return DevSecrets(auth_secret=values["auth_secret"], secrets_key=values["secrets_key"])


_SECRET_VARS = {"auth_secret": "AUTOM_AUTH_SECRET", "secrets_key": "AUTOM_SECRETS_KEY"}


def _fernet_key() -> str:
    # A Fernet key is the urlsafe base64 of 32 random bytes; no need for `cryptography`.
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


_GENERATORS = {"auth_secret": lambda: secrets.token_hex(32), "secrets_key": _fernet_key}


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
