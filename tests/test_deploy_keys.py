"""Compose and Kubernetes give each process only the keys it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KEYS = {"AUTOM_AUTH_SECRET", "AUTOM_SECRETS_KEY"}


def test_compose_gives_the_secrets_key_to_definitions_and_no_key_to_the_gateway(
    repo_root: Path,
) -> None:
    compose = yaml.safe_load((repo_root / "deploy" / "docker-compose.yaml").read_text())
    held = {
        name: KEYS & set(svc.get("environment") or {}) for name, svc in compose["services"].items()
    }
    assert held["gateway"] == set()
    assert [n for n, keys in held.items() if "AUTOM_SECRETS_KEY" in keys] == ["definitions"]
    for name in ("definitions", "scheduler", "executor", "drafter"):
        assert "AUTOM_AUTH_SECRET" in held[name]


def _containers(docs: list[Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for doc in docs:
        if doc and doc["kind"] in ("Deployment", "Job"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            out[doc["metadata"]["name"]] = container
    return out


def test_kubernetes_mounts_the_secrets_key_in_definitions_only_and_nothing_in_the_gateway(
    repo_root: Path,
) -> None:
    docs = list(yaml.safe_load_all((repo_root / "deploy" / "k8s" / "autom.yaml").read_text()))
    secrets = {
        name: {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
        for name, c in _containers(docs).items()
    }
    assert secrets["autom-gateway"] == set()
    assert [n for n, refs in secrets.items() if "autom-secrets-key" in refs] == [
        "autom-definitions"
    ]
