"""Where the CLI finds its token and the services: environment first, then the config file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autom.core.grpctls import GrpcTls

SERVICES = ("definitions", "scheduler", "executor", "drafter")
DEFAULT_ADDRESSES = {
    "definitions": "127.0.0.1:50051",
    "scheduler": "127.0.0.1:50052",
    "executor": "127.0.0.1:50053",
    "drafter": "127.0.0.1:50054",
}


class ConfigFileError(ValueError):
    """The config file exists but cannot be used."""


def config_path(env: Mapping[str, str]) -> Path:
    """$AUTOM_CONFIG, else $XDG_CONFIG_HOME/autom/config.json, else ~/.config/autom/config.json."""
    explicit = env.get("AUTOM_CONFIG", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "autom" / "config.json"


def read_file(path: Path) -> dict[str, Any]:
    """The stored settings ({} when there is no file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path} does not hold a JSON object")
    return data


def write_file(path: Path, data: Mapping[str, Any]) -> None:
    """Replace the config file atomically, readable by the owner only (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(data), indent=2) + "\n")
    tmp.replace(path)


@dataclass(frozen=True)
class CliConfig:
    """The token, the service addresses and the call deadline of one invocation."""

    path: Path
    token: str | None
    token_source: str
    addresses: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ADDRESSES))
    timeout_seconds: float = 30.0
    # AUTOM_GRPC_TLS_CA_FILE (and a client certificate for mutual TLS): dial the services TLS.
    tls: GrpcTls = field(default_factory=GrpcTls)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> CliConfig:
        """AUTOM_TOKEN / AUTOM_<SERVICE>_ADDR / AUTOM_TIMEOUT, else the file, else defaults."""
        env = os.environ if env is None else env
        path = config_path(env)
        stored = read_file(path)
        token = env.get("AUTOM_TOKEN", "").strip() or None
        source = "AUTOM_TOKEN"
        if token is None and isinstance(stored.get("token"), str) and stored["token"]:
            token, source = stored["token"], str(path)
        addresses = {}
        raw_addresses = stored.get("addresses")
        stored_addresses: dict[str, Any] = raw_addresses if isinstance(raw_addresses, dict) else {}
        for name in SERVICES:
            addresses[name] = (
                env.get(f"AUTOM_{name.upper()}_ADDR", "").strip()
                or str(stored_addresses.get(name) or "")
                or DEFAULT_ADDRESSES[name]
            )
        try:
            timeout = float(env.get("AUTOM_TIMEOUT", "") or stored.get("timeout_seconds") or 30.0)
        except ValueError as exc:
            raise ConfigFileError("AUTOM_TIMEOUT must be a number of seconds") from exc
        try:
            tls = GrpcTls.from_env(env)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise ConfigFileError(f"gRPC TLS settings: {problems}") from None
        return cls(
            path=path,
            token=token,
            token_source=source if token else "",
            addresses=addresses,
            timeout_seconds=timeout,
            tls=tls,
        )

    def save_token(self, token: str) -> None:
        """Store the token in the config file, keeping its other settings."""
        data = read_file(self.path)
        data["token"] = token
        write_file(self.path, data)
