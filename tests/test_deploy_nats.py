"""The NATS configurations in deploy/ are accepted by nats-server and fsync every write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from autom.devstack.nats import nats_server_binary


def check_config(path: Path, env: dict[str, str] | None = None) -> None:
    """`nats-server -t` accepts it, and it asks for an fsync per write."""
    proc = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sync_interval: always" in path.read_text()


def test_compose_starts_nats_from_a_durable_config_file(repo_root: Path) -> None:
    deploy = repo_root / "deploy"
    nats = yaml.safe_load((deploy / "docker-compose.yaml").read_text())["services"]["nats"]
    args: list[str] = nats["command"]
    mounts = dict(v.split(":")[:2][::-1] for v in nats["volumes"] if v.startswith("./"))
    assert args[0] == "-c" and len(args) == 2, args  # no flag the binary would reject
    check_config(deploy / mounts[args[1]])


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
    conf = tmp_path / "nats.conf"
    conf.write_text(config["data"]["nats.conf"])
    check_config(conf, env={"SERVER_NAME": "nats-0"})
