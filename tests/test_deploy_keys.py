"""Compose and Kubernetes give each process only the keys it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autom.devstack.run import KEY_VARS

KEYS = set(KEY_VARS)
VERIFIERS = ("scheduler", "executor", "drafter")


def test_compose_gives_the_signing_and_secrets_keys_to_definitions_and_no_key_to_the_gateway(
    repo_root: Path,
) -> None:
    compose = yaml.safe_load((repo_root / "deploy" / "docker-compose.yaml").read_text())
    held = {
        name: KEYS & set(svc.get("environment") or {}) for name, svc in compose["services"].items()
    }
    assert held["gateway"] == set() and held["migrate"] == set()
    for key in ("AUTOM_SECRETS_KEY", "AUTOM_AUTH_PRIVATE_KEY", "AUTOM_SERVICE_CREDENTIALS"):
        assert [n for n, keys in held.items() if key in keys] == ["definitions"], key
    for name in VERIFIERS:
        assert "AUTOM_AUTH_PUBLIC_KEYS" in held[name]
    assert [n for n, keys in held.items() if "AUTOM_SERVICE_CREDENTIAL" in keys] == [
        "scheduler",
        "executor",
    ]
    env = {name: svc.get("environment") or {} for name, svc in compose["services"].items()}
    assert "SCHEDULER" in env["scheduler"]["AUTOM_SERVICE_CREDENTIAL"]
    assert "EXECUTOR" in env["executor"]["AUTOM_SERVICE_CREDENTIAL"]


def _containers(docs: list[Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for doc in docs:
        if doc and doc["kind"] in ("Deployment", "Job"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            out[doc["metadata"]["name"]] = container
    return out


def test_kubernetes_mounts_the_signing_and_secrets_keys_in_definitions_only_and_nothing_in_the_gateway(  # noqa: E501
    repo_root: Path,
) -> None:
    docs = list(yaml.safe_load_all((repo_root / "deploy" / "k8s" / "autom.yaml").read_text()))
    refs = {
        name: {
            s.get("secretRef", s.get("configMapRef", {})).get("name") for s in c.get("envFrom", [])
        }
        for name, c in _containers(docs).items()
    }
    assert refs["autom-gateway"] == {"autom"}  # the plain ConfigMap of addresses
    # Each service migrates in its init container, with the database URL only.
    migrations = [
        c
        for doc in docs
        if doc and doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"].get("initContainers", [])
        if c["command"][-1] == "migrate"
    ]
    assert len(migrations) == 4
    for c in migrations:
        assert {
            s.get("secretRef", s.get("configMapRef", {})).get("name") for s in c["envFrom"]
        } == {"autom"}
    for secret in ("autom-signing-key", "autom-secrets-key"):
        assert [n for n, r in refs.items() if secret in r] == ["autom-definitions"]
    assert [n for n, r in refs.items() if "autom-scheduler-credential" in r] == ["autom-scheduler"]
    assert [n for n, r in refs.items() if "autom-executor-credential" in r] == ["autom-executor"]
    for name in VERIFIERS:
        assert "autom-auth-public" in refs[f"autom-{name}"]

    # Every Secret referred to has a template holding exactly the variables it is for.
    templates = {
        doc["metadata"]["name"]: set(doc["stringData"])
        for doc in yaml.safe_load_all(
            (repo_root / "deploy" / "k8s" / "secrets.example.yaml").read_text()
        )
        if doc and doc["kind"] == "Secret"
    }
    referred = {r for rs in refs.values() for r in rs} - {"autom", "autom-auth-public"}
    assert referred <= set(templates)
    assert templates["autom-signing-key"] == {"AUTOM_AUTH_PRIVATE_KEY", "AUTOM_SERVICE_CREDENTIALS"}
    assert templates["autom"] == {"AUTOM_DATABASE_URL"}


def test_migrations_run_without_any_key(database_url: str) -> None:
    """The migration job holds only the database URL (compose and Kubernetes above)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOM_")}
    env.update({"AUTOM_DATABASE_URL": database_url, "AUTOM_LOG_LEVEL": "WARNING"})
    # Definitions has its own entry point; the others share run_service's.
    procs = {
        service: subprocess.Popen(
            [sys.executable, "-m", f"autom.{service}", "migrate"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for service in ("definitions", "scheduler")
    }
    for service, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (service, err[-2000:])
