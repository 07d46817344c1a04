"""The NATS configurations in deploy/ are accepted by nats-server, fsync every write and run
with Autom's users (one per service, deploy/nats/autom-auth.conf)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from autom.core.natsauth import DEPLOYED_USERS, deploy_conf, password_env
from autom.devstack.nats import nats_server_binary

PASSWORDS = {password_env(user): f"pw-{user}" for user in DEPLOYED_USERS}


def check_config(path: Path, env: dict[str, str] | None = None) -> None:
    """`nats-server -t` accepts it (with every user's password set, as deployed), and it asks
    for an fsync per write and includes Autom's users."""
    proc = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **PASSWORDS, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sync_interval: always" in path.read_text()
    assert "include ./autom-auth.conf" in path.read_text()
    assert (path.parent / "autom-auth.conf").read_text() == deploy_conf()


def test_compose_starts_nats_from_a_durable_config_file(repo_root: Path) -> None:
    deploy = repo_root / "deploy"
    nats = yaml.safe_load((deploy / "docker-compose.yaml").read_text())["services"]["nats"]
    args: list[str] = nats["command"]
    mounts = dict(v.split(":")[:2][::-1] for v in nats["volumes"] if v.startswith("./"))
    assert args[0] == "-c" and len(args) == 2, args  # no flag the binary would reject
    # The include resolves beside the main file, as in the container.
    assert Path(mounts["/etc/nats/autom-auth.conf"]).name == "autom-auth.conf"
    assert Path(mounts[args[1]]).parent == Path(mounts["/etc/nats/autom-auth.conf"]).parent
    assert set(nats["environment"]) == set(PASSWORDS)
    check_config(deploy / mounts[args[1]])


def test_compose_gives_each_service_only_its_own_nats_password(repo_root: Path) -> None:
    services = yaml.safe_load((repo_root / "deploy/docker-compose.yaml").read_text())["services"]
    for user in DEPLOYED_USERS[1:]:
        env = services[user]["environment"]
        assert env["AUTOM_NATS_USER"] == user
        assert env["AUTOM_NATS_PASSWORD"] == "${" + password_env(user) + "}"
        assert not set(env) & set(PASSWORDS)  # no other user's password


def test_k8s_nats_runs_the_cluster_config_from_its_configmap(
    repo_root: Path, tmp_path: Path
) -> None:
    docs: list[dict[str, Any]] = list(
        yaml.safe_load_all((repo_root / "deploy/k8s/autom.yaml").read_text())
    )
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-config"
    )
    sts = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["-c", "/etc/nats/nats.conf"]
    cluster = repo_root / "deploy/nats/nats-cluster.conf"
    assert config["data"]["nats.conf"] == cluster.read_text()
    assert container["envFrom"] == [{"secretRef": {"name": "autom-nats"}}]
    for name, text in config["data"].items():
        (tmp_path / name).write_text(text)
    check_config(tmp_path / "nats.conf", env={"SERVER_NAME": "nats-0"})


def test_k8s_gives_each_service_only_its_own_nats_password(repo_root: Path) -> None:
    docs: list[dict[str, Any]] = list(
        yaml.safe_load_all((repo_root / "deploy/k8s/autom.yaml").read_text())
    )
    for user in DEPLOYED_USERS[1:]:
        deployment = next(
            d
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["name"] == f"autom-{user}"
        )
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["AUTOM_NATS_USER"]["value"] == user
        ref = env["AUTOM_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "autom-nats", "key": password_env(user)}
