"""The `make run` wiring: port checks, the child environment contract, the banner."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from autom.devstack.config import DevConfig, DevSecrets
from autom.devstack.nats import nats_passwords
from autom.devstack.run import (
    EXIT_USAGE,
    KEY_VARS,
    banner,
    build_services,
    port_claims,
    python_module_command,
    run_dev,
    service_envs,
)
from autom.devstack.supervisor import GrpcHealth, HttpHealth

SECRETS = DevSecrets(
    auth_private_key="dGVzdC1zaWduaW5nLWtleS1vZi10aGUtYXV0b20tc3U",
    secrets_key="key",
    page_token_key="p" * 43,
    scheduler_credential="svc.scheduler." + "s" * 43,
    executor_credential="svc.executor." + "e" * 43,
)
KEYS = set(KEY_VARS)


def test_port_in_use_exits_2_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        # External servers: the embedded defaults (55432, 54222) sit in the ephemeral range,
        # where a busy machine's client sockets may hold them and be reported first.
        code = run_dev(
            {
                "AUTOM_HOME": str(tmp_path),
                "AUTOM_DATABASE_URL": "postgresql://db.invalid/autom",
                "AUTOM_NATS_URL": "nats://nats.invalid:4222",
                "AUTOM_DEFINITIONS_PORT": str(port),
            }
        )

    assert code == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"autom-dev: port {port} (definitions gRPC) on 127.0.0.1 is already in use; "
        "set AUTOM_DEFINITIONS_PORT to another port\n"
    )


def test_bad_setting_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_dev({"AUTOM_HOME": str(tmp_path), "AUTOM_PG_PORT": "x"}) == EXIT_USAGE
    assert "AUTOM_PG_PORT='x' is not a port number" in capsys.readouterr().err


def test_external_servers_need_no_embedded_ports(tmp_path: Path) -> None:
    config = DevConfig(home=tmp_path, database_url="postgresql://db/x", nats_url="nats://n")
    assert [c.env_var for c in port_claims(config)] == [
        "AUTOM_DEFINITIONS_PORT",
        "AUTOM_SCHEDULER_PORT",
        "AUTOM_EXECUTOR_PORT",
        "AUTOM_DRAFTER_PORT",
        "AUTOM_HTTP_PORT",
    ]
    assert len(port_claims(DevConfig(home=tmp_path))) == 7


def test_service_environment_contract(tmp_path: Path) -> None:
    config = DevConfig(home=tmp_path)

    envs = service_envs(config, SECRETS, {"PATH": "/bin", "AUTOM_GRPC_PORT": "1"})

    assert envs["scheduler"] == {
        "PATH": "/bin",
        "PYTHONUNBUFFERED": "1",
        "AUTOM_DATABASE_URL": "postgresql://postgres@127.0.0.1:55432/autom",
        "AUTOM_NATS_URL": "nats://127.0.0.1:54222",
        "AUTOM_AUTH_PUBLIC_KEYS": SECRETS.auth_public_key,
        "AUTOM_SERVICE_CREDENTIAL": SECRETS.scheduler_credential,
        "AUTOM_PAGE_TOKEN_KEY": "p" * 43,
        "AUTOM_GRPC_HOST": "127.0.0.1",
        "AUTOM_GRPC_PORT": "50052",
        "AUTOM_DEFINITIONS_ADDR": "127.0.0.1:50051",
        "AUTOM_SCHEDULER_ADDR": "127.0.0.1:50052",
        "AUTOM_EXECUTOR_ADDR": "127.0.0.1:50053",
        "AUTOM_DRAFTER_ADDR": "127.0.0.1:50054",
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),  # else platformdirs warns in every child
    }
    assert envs["gateway"]["AUTOM_HTTP_HOST"] == "127.0.0.1"
    assert envs["gateway"]["AUTOM_HTTP_PORT"] == "8080"
    assert "AUTOM_GRPC_PORT" not in envs["gateway"]
    # Only definitions holds the signing and secrets keys; the others verify with the public
    # key; the internet-facing gateway holds no key at all.
    assert envs["definitions"]["AUTOM_SECRETS_KEY"] == "key"
    assert envs["definitions"]["AUTOM_AUTH_PRIVATE_KEY"] == SECRETS.auth_private_key
    for key in ("AUTOM_SECRETS_KEY", "AUTOM_AUTH_PRIVATE_KEY", "AUTOM_SERVICE_CREDENTIALS"):
        assert [n for n, e in envs.items() if key in e] == ["definitions"]
    assert [n for n, e in envs.items() if "AUTOM_SERVICE_CREDENTIAL" in e] == [
        "scheduler",
        "executor",
    ]
    assert envs["executor"]["AUTOM_SERVICE_CREDENTIAL"] == SECRETS.executor_credential
    assert envs["drafter"]["AUTOM_AUTH_PUBLIC_KEYS"] == SECRETS.auth_public_key
    assert not KEYS & set(envs["gateway"])


def test_a_runtime_dir_already_set_is_kept(tmp_path: Path) -> None:
    envs = service_envs(DevConfig(home=tmp_path), SECRETS, {"XDG_RUNTIME_DIR": "/run/user/7"})
    assert {env["XDG_RUNTIME_DIR"] for env in envs.values()} == {"/run/user/7"}


def test_keys_in_the_developer_environment_do_not_leak_to_other_services(
    tmp_path: Path,
) -> None:
    base = {
        **dict.fromkeys(KEYS, "mine"),
        "AUTOM_GRPC_TLS_CERT_FILE": "c.pem",  # make run serves plaintext
    }
    envs = service_envs(DevConfig(home=tmp_path), SECRETS, base)
    assert not any(k.startswith("AUTOM_GRPC_TLS_") for env in envs.values() for k in env)
    assert not KEYS & set(envs["gateway"])
    assert not {"AUTOM_SECRETS_KEY", "AUTOM_AUTH_PRIVATE_KEY"} & set(envs["executor"])
    assert envs["executor"]["AUTOM_AUTH_PUBLIC_KEYS"] == SECRETS.auth_public_key


def test_each_service_connects_to_the_embedded_nats_as_its_own_user(tmp_path: Path) -> None:
    base = {"AUTOM_NATS_USER": "admin", "AUTOM_NATS_PASSWORD": "mine"}
    envs = service_envs(DevConfig(home=tmp_path), SECRETS, base, "master")

    passwords = nats_passwords("master")
    for name, env in envs.items():
        assert env["AUTOM_NATS_USER"] == name
        assert env["AUTOM_NATS_PASSWORD"] == passwords[name]
    assert len({env["AUTOM_NATS_PASSWORD"] for env in envs.values()} | {"master"}) == 6


def test_nats_credentials_for_an_external_server_pass_through(tmp_path: Path) -> None:
    config = DevConfig(home=tmp_path, nats_url="nats://n")
    base = {"AUTOM_NATS_USER": "me", "AUTOM_NATS_PASSWORD": "mine"}
    env = service_envs(config, SECRETS, base)["executor"]
    assert (env["AUTOM_NATS_USER"], env["AUTOM_NATS_PASSWORD"]) == ("me", "mine")


def test_external_urls_are_passed_through_and_wildcard_host_is_dialled_locally(
    tmp_path: Path,
) -> None:
    config = DevConfig(
        home=tmp_path, host="0.0.0.0", database_url="postgresql://u:pw@db/x", nats_url="nats://n"
    )

    env = service_envs(config, SECRETS, {})["executor"]

    assert env["AUTOM_DATABASE_URL"] == "postgresql://u:pw@db/x"
    assert env["AUTOM_NATS_URL"] == "nats://n"
    assert env["AUTOM_GRPC_HOST"] == "0.0.0.0"
    assert env["AUTOM_DEFINITIONS_ADDR"] == "127.0.0.1:50051"


def test_services_run_as_python_modules_in_dependency_order(tmp_path: Path) -> None:
    config = DevConfig(home=tmp_path)
    specs = build_services(config, service_envs(config, SECRETS, {}), python_module_command)

    assert [s.name for s in specs] == ["definitions", "scheduler", "executor", "drafter", "gateway"]
    assert specs[0].command == [sys.executable, "-m", "autom.definitions"]
    assert specs[0].migrate == [sys.executable, "-m", "autom.definitions", "migrate"]
    assert specs[0].health == GrpcHealth("127.0.0.1:50051")
    assert specs[-1].migrate is None
    assert specs[-1].health == HttpHealth("http://127.0.0.1:8080/healthz")


def test_banner_shows_endpoints_and_token_but_no_passwords(tmp_path: Path) -> None:
    config = DevConfig(home=tmp_path, database_url="postgresql://u:hunter2@db:5432/x")

    text = banner(config, "tok")

    assert "export AUTOM_TOKEN=tok" in text
    assert "127.0.0.1:50053" in text
    assert "http://127.0.0.1:8080" in text
    assert "http://127.0.0.1:8080/ui" in text
    assert "postgresql://u:***@db:5432/x" in text
    assert "hunter2" not in text
    assert "no dev token" in banner(config, None)


def test_metrics_ports_are_opt_in_and_given_to_each_process(tmp_path: Path) -> None:
    assert (
        "AUTOM_METRICS_PORT"
        not in service_envs(DevConfig(home=tmp_path), SECRETS, {"AUTOM_METRICS_PORT": "9"})[
            "executor"
        ]
    )
    config = DevConfig.from_env({"AUTOM_METRICS_BASE_PORT": "9101"}, cwd=tmp_path)
    envs = service_envs(config, SECRETS, {})
    ports = {name: env["AUTOM_METRICS_PORT"] for name, env in envs.items()}
    assert ports == {
        "definitions": "9101",
        "scheduler": "9102",
        "executor": "9103",
        "drafter": "9104",
        "gateway": "9105",
    }
    assert len(port_claims(config)) == 12
    assert "http://127.0.0.1:9105/metrics" in banner(config, "tok")
