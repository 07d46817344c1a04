"""`make run` / `autom-dev`: the whole stack in the foreground with prefixed logs."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from autom.core.natsauth import authorization_conf
from autom.devstack.config import (
    DEV_TOKEN_FILE,
    ConfigError,
    DevConfig,
    DevSecrets,
    load_dev_secrets,
    load_nats_admin_password,
)
from autom.devstack.migrations import schema_at_head
from autom.devstack.nats import EmbeddedNats, nats_log_filter, nats_passwords
from autom.devstack.output import PrefixPrinter, PrinterHandler, use_color
from autom.devstack.ports import PortInUseError, ensure_port_free
from autom.devstack.postgres import EmbeddedPostgres, PostgresLogFilter, redact_url
from autom.devstack.supervisor import GrpcHealth, HttpHealth, ServiceSpec, Supervisor

logger = logging.getLogger(__name__)

GRPC_SERVICES = ("definitions", "scheduler", "executor", "drafter")
GATEWAY = "gateway"
# Dependents first: each service still reaches what it depends on while it drains.
STOP_ORDER = (GATEWAY, "drafter", "scheduler", "executor", "definitions")
# The executor may be finishing runs (or handing them back); the others have little to drain.
STOP_TIMEOUTS = {"executor": 30.0}
DEFAULT_STOP_TIMEOUT = 10.0
# Key material reaches a child only through `service_envs`, never from the developer's shell.
KEY_VARS = (
    "AUTOM_AUTH_PRIVATE_KEY",
    "AUTOM_AUTH_PUBLIC_KEYS",
    "AUTOM_SECRETS_KEY",
    "AUTOM_SERVICE_CREDENTIALS",
    "AUTOM_SERVICE_CREDENTIAL",
    "AUTOM_PAGE_TOKEN_KEY",
    # Legacy single secret: make run gives each process its own keys instead.
    "AUTOM_AUTH_SECRET",
)
# The access-log line of one readiness poll (503 until the gateway's backends answer).
_HEALTHZ_ACCESS = re.compile(r'"GET /healthz(\?\S*)? HTTP/[\d.]+" \d{3}')


def healthz_poll(line: str) -> bool:
    """True for an access-log line of GET /healthz: noise while the supervisor polls it."""
    return _HEALTHZ_ACCESS.search(line) is not None


DATABASE = "autom"
EMBEDDED_HOST = "127.0.0.1"  # PostgreSQL trusts local users: never listen beyond loopback

EXIT_FAILURE = 1
EXIT_USAGE = 2

CommandFactory = Callable[[str, str | None], list[str]]
"""(service, subcommand or None) → argv."""


def python_module_command(service: str, subcommand: str | None = None) -> list[str]:
    """`python -m autom.<service> [subcommand]` with this interpreter."""
    return [sys.executable, "-m", f"autom.{service}", *([subcommand] if subcommand else [])]


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _address(host: str, port: int) -> str:
    host = _connect_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class PortClaim:
    """A port the stack will bind, and the variable that moves it."""

    host: str
    port: int
    what: str
    env_var: str


def grpc_ports(config: DevConfig) -> dict[str, int]:
    """gRPC port of each service."""
    return {
        "definitions": config.definitions_port,
        "scheduler": config.scheduler_port,
        "executor": config.executor_port,
        "drafter": config.drafter_port,
    }


def metrics_ports(config: DevConfig) -> dict[str, int]:
    """/metrics port of each process (none unless AUTOM_METRICS_BASE_PORT is set)."""
    base = config.metrics_base_port
    if base is None:
        return {}
    return {name: base + i for i, name in enumerate((*GRPC_SERVICES, GATEWAY))}


def port_claims(config: DevConfig) -> list[PortClaim]:
    """Every port this run will bind."""
    claims: list[PortClaim] = []
    if config.database_url is None:
        claims.append(
            PortClaim(EMBEDDED_HOST, config.pg_port, "embedded PostgreSQL", "AUTOM_PG_PORT")
        )
    if config.nats_url is None:
        claims.append(
            PortClaim(EMBEDDED_HOST, config.nats_port, "embedded nats-server", "AUTOM_NATS_PORT")
        )
    for name, port in grpc_ports(config).items():
        claims.append(PortClaim(config.host, port, f"{name} gRPC", f"AUTOM_{name.upper()}_PORT"))
    claims.append(PortClaim(config.host, config.http_port, "gateway HTTP", "AUTOM_HTTP_PORT"))
    for name, port in metrics_ports(config).items():
        claims.append(PortClaim(config.host, port, f"{name} metrics", "AUTOM_METRICS_BASE_PORT"))
    return claims


def database_url(config: DevConfig) -> str:
    """AUTOM_DATABASE_URL, or the embedded server's `autom` database."""
    return (
        config.database_url or f"postgresql://postgres@{EMBEDDED_HOST}:{config.pg_port}/{DATABASE}"
    )


def nats_url(config: DevConfig) -> str:
    """AUTOM_NATS_URL, or the embedded server."""
    return config.nats_url or f"nats://{EMBEDDED_HOST}:{config.nats_port}"


def runtime_dir(config: DevConfig) -> Path:
    """Private runtime directory for the children when XDG_RUNTIME_DIR is unset."""
    return config.home / "run"


def service_envs(
    config: DevConfig,
    secrets: DevSecrets,
    base: Mapping[str, str],
    nats_admin_password: str | None = None,
) -> dict[str, dict[str, str]]:
    """The environment of each service (and of its migrate / dev-token commands).

    With `nats_admin_password` (the embedded nats-server) each service gets its own NATS
    user; with AUTOM_NATS_URL, AUTOM_NATS_USER / AUTOM_NATS_PASSWORD pass through as set.
    """
    # Keys reach a process only below, never through the developer's own environment.
    keys: tuple[str, ...] = (*KEY_VARS, "AUTOM_GRPC_PORT", "AUTOM_METRICS_PORT")
    if nats_admin_password is not None:
        keys += ("AUTOM_NATS_USER", "AUTOM_NATS_PASSWORD")
    common = {
        # make run is plaintext gRPC (its own health checks dial plaintext): TLS settings of
        # the developer's environment would leave the services unreachable to it.
        **{k: v for k, v in base.items() if k not in keys and not k.startswith("AUTOM_GRPC_TLS_")},
        "PYTHONUNBUFFERED": "1",  # whole lines promptly, for the prefixed log
        "AUTOM_DATABASE_URL": database_url(config),
        "AUTOM_NATS_URL": nats_url(config),
        "AUTOM_GRPC_HOST": config.host,
    }
    # Without it platformdirs warns in every Python child (containers, ssh without a session).
    common.setdefault("XDG_RUNTIME_DIR", str(runtime_dir(config)))
    ports = grpc_ports(config)
    for name, port in ports.items():
        common[f"AUTOM_{name.upper()}_ADDR"] = _address(config.host, port)
    # Each process gets only the keys it uses: the signing, secrets and credential-checking
    # keys definitions only, a public key and its own credential the others, the gateway none.
    envs = {
        name: {
            **common,
            "AUTOM_AUTH_PUBLIC_KEYS": secrets.auth_public_key,
            "AUTOM_PAGE_TOKEN_KEY": secrets.page_token_key,
            "AUTOM_GRPC_PORT": str(port),
        }
        for name, port in ports.items()
    }
    del envs["definitions"]["AUTOM_AUTH_PUBLIC_KEYS"]  # its own key is implied
    envs["definitions"]["AUTOM_AUTH_PRIVATE_KEY"] = secrets.auth_private_key
    envs["definitions"]["AUTOM_SECRETS_KEY"] = secrets.secrets_key
    envs["definitions"]["AUTOM_SERVICE_CREDENTIALS"] = secrets.service_credentials
    envs["scheduler"]["AUTOM_SERVICE_CREDENTIAL"] = secrets.scheduler_credential
    envs["executor"]["AUTOM_SERVICE_CREDENTIAL"] = secrets.executor_credential
    gateway = {**common, "AUTOM_HTTP_HOST": config.host, "AUTOM_HTTP_PORT": str(config.http_port)}
    envs[GATEWAY] = gateway
    for name, port in metrics_ports(config).items():
        envs[name]["AUTOM_METRICS_HOST"] = config.host
        envs[name]["AUTOM_METRICS_PORT"] = str(port)
    if nats_admin_password is not None:
        passwords = nats_passwords(nats_admin_password)
        for name, env in envs.items():
            env.update(AUTOM_NATS_USER=name, AUTOM_NATS_PASSWORD=passwords[name])
    return envs


def build_services(
    config: DevConfig, envs: Mapping[str, Mapping[str, str]], command: CommandFactory
) -> list[ServiceSpec]:
    """The four gRPC services then the gateway, in start order."""
    specs = [
        ServiceSpec(
            name=name,
            command=command(name, None),
            env=envs[name],
            health=GrpcHealth(_address(config.host, port)),
            migrate=command(name, "migrate"),
            at_head=functools.partial(schema_at_head, database_url(config), name, f"autom.{name}"),
            stop_timeout=STOP_TIMEOUTS.get(name, DEFAULT_STOP_TIMEOUT),
        )
        for name, port in grpc_ports(config).items()
    ]
    specs.append(
        ServiceSpec(
            name=GATEWAY,
            command=command(GATEWAY, None),
            env=envs[GATEWAY],
            health=HttpHealth(f"http://{_address(config.host, config.http_port)}/healthz"),
            stop_timeout=DEFAULT_STOP_TIMEOUT,
            startup_noise=healthz_poll,
        )
    )
    return specs


def banner(config: DevConfig, token: str | None, note: str = "") -> str:
    """What to print once everything is ready; the dev token is the only secret shown."""
    http = f"http://{_address(config.host, config.http_port)}"
    rows = [
        *(
            (name, f"gRPC  {_address(config.host, port)}")
            for name, port in grpc_ports(config).items()
        ),
        (GATEWAY, f"HTTP  {http}"),
        ("console", f"web   {http}/ui  (sign in with the dev token)"),
        *(
            (name, f"metrics  http://{_address(config.host, port)}/metrics")
            for name, port in metrics_ports(config).items()
        ),
        ("database", redact_url(database_url(config))),
        ("nats", redact_url(nats_url(config))),
        ("data", str(config.home)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["", "Autom is running", ""]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    if token is None:
        lines.append("  (no dev token: see the error above)")
        auth = ""
    else:
        title = f"Dev token ({note}):" if note else "Dev token:"
        lines += [title, f"  export AUTOM_TOKEN={token}", ""]
        auth = ' -H "Authorization: Bearer $AUTOM_TOKEN"'
    definitions = _address(config.host, config.definitions_port)
    grpc_auth = ' -H "authorization: Bearer $AUTOM_TOKEN"' if token else ""
    lines += [
        "Try:",
        f"  curl{auth} {http}/v1/automations",
        f"  grpcurl -plaintext{grpc_auth} {definitions} list",
        "",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def _forward(
    printer: PrefixPrinter, name: str, keep: Callable[[str], bool]
) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        if keep(line):
            printer.line(name, line)

    return on_line


def run_dev(
    environ: Mapping[str, str] | None = None,
    *,
    command: CommandFactory = python_module_command,
    stream: TextIO | None = None,
    cwd: Path | None = None,
) -> int:
    """Run the dev stack until Ctrl-C/SIGTERM; return the exit code. Call from the main thread."""
    env = dict(os.environ if environ is None else environ)
    out = sys.stdout if stream is None else stream
    try:
        config = DevConfig.from_env(env, cwd=cwd)
        for claim in port_claims(config):
            ensure_port_free(claim.host, claim.port, claim.what, env_var=claim.env_var)
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        secrets = load_dev_secrets(config.home, env)
        runtime_dir(config).mkdir(mode=0o700, exist_ok=True)
    except (ConfigError, PortInUseError, OSError) as exc:  # OSError: AUTOM_HOME, AUTOM_HOST
        print(f"autom-dev: {exc}", file=sys.stderr)
        return EXIT_USAGE

    printer = PrefixPrinter(
        out, color=use_color(out, env), names=["postgres", "nats", *GRPC_SERVICES, GATEWAY]
    )
    handler = PrinterHandler(printer)
    package_logger = logging.getLogger("autom.devstack")
    previous_level, previous_propagate = package_logger.level, package_logger.propagate
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    try:
        postgres = None
        if config.database_url is None:
            postgres = EmbeddedPostgres(
                config.home / "postgres",
                config.pg_port,
                fsync=True,  # the developer's data
                host=EMBEDDED_HOST,
                on_output=_forward(printer, "postgres", PostgresLogFilter()),
            )
        nats = None
        nats_admin = None
        if config.nats_url is None:
            nats_admin = load_nats_admin_password(config.home)
            nats = EmbeddedNats(
                config.home / "nats",
                config.nats_port,
                host=EMBEDDED_HOST,
                on_output=_forward(printer, "nats", nats_log_filter),
                authorization=authorization_conf(nats_passwords(nats_admin)),
            )
        envs = service_envs(config, secrets, env, nats_admin)
        supervisor = Supervisor(
            build_services(config, envs, command),
            printer=printer,
            postgres=postgres,
            databases=[DATABASE] if postgres is not None else [],
            nats=nats,
            dev_token=command("definitions", "dev-token"),
            dev_token_env=envs["definitions"],
            banner=lambda token, note: banner(config, token, note),
            dev_token_file=config.home / DEV_TOKEN_FILE,
            whoami_address=_address(config.host, config.definitions_port),
            stop_order=STOP_ORDER,
        )
        return asyncio.run(supervisor.run())
    except Exception:
        logger.exception("autom-dev failed")
        return EXIT_FAILURE
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        package_logger.propagate = previous_propagate


def main() -> None:
    """Console entry point `autom-dev`."""
    sys.exit(run_dev())


if __name__ == "__main__":
    main()
