"""The Kubernetes manifests, checked offline: the Kubernetes schemas (kubernetes-validate's
bundled ones, strict), then what the schemas cannot say: resources, non-root and read-only,
probes, disruption budgets, autoscaling, migrations ordered first, every secret defined."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices, SecretStr

K8S_VERSION = "1.31.0"
GRPC_SERVICES = {"definitions": 50051, "scheduler": 50052, "executor": 50053, "drafter": 50054}
Doc = dict[str, Any]


def _load(repo_root: Path, name: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all((repo_root / "deploy/k8s" / name).read_text()) if d]


@pytest.fixture(scope="module")
def docs(repo_root: Path) -> list[Doc]:
    return _load(repo_root, "autom.yaml")


@pytest.fixture(scope="module")
def secrets(repo_root: Path) -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d["stringData"])
        for d in _load(repo_root, "secrets.example.yaml")
        if d["kind"] == "Secret"
    }


def _named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _pod(doc: Doc) -> Doc:
    pod: Doc = doc["spec"]["template"]["spec"]
    return pod


def _containers(doc: Doc) -> list[Doc]:
    pod = _pod(doc)
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_every_manifest_passes_the_kubernetes_schemas_strictly(
    repo_root: Path, docs: list[Doc]
) -> None:
    checked = [*docs, *_load(repo_root, "secrets.example.yaml")]
    for doc in checked:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = {d["kind"] for d in checked}
    assert {"Deployment", "StatefulSet", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    assert "Secret" in kinds


def test_every_pod_runs_non_root_read_only_with_requests_and_limits(docs: list[Doc]) -> None:
    workloads = [*_named(docs, "Deployment").values(), *_named(docs, "StatefulSet").values()]
    assert len(workloads) == 6
    for doc in workloads:
        name = doc["metadata"]["name"]
        assert _pod(doc)["securityContext"]["runAsNonRoot"] is True, name
        assert _pod(doc)["securityContext"]["runAsUser"] > 0, name
        for c in _containers(doc):
            sec = c["securityContext"]
            assert sec["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sec["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sec["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), (name, c["name"], bound)


def test_every_grpc_service_has_grpc_probes_and_migrates_its_schema_first(
    docs: list[Doc],
) -> None:
    deployments = _named(docs, "Deployment")
    for service, port in GRPC_SERVICES.items():
        doc = deployments[f"autom-{service}"]
        (main,) = _pod(doc)["containers"]
        assert main["command"] == [f"autom-{service}"]
        assert main["readinessProbe"]["grpc"] == {"port": port}
        assert main["livenessProbe"]["grpc"] == {"port": port, "service": "liveness"}
        # Init containers finish before the service starts: migrations are ordered first,
        # and re-run (a no-op at head) on every rollout instead of a once-only Job.
        (migrate,) = _pod(doc)["initContainers"]
        assert migrate["command"] == [f"autom-{service}", "migrate"]
        # Its config and database come from where the service's do; it holds no key
        # (tests/test_deploy_keys.py).
        assert migrate["envFrom"] and all(r in main["envFrom"] for r in migrate["envFrom"])
    gateway = _pod(deployments["autom-gateway"])["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" in gateway
    assert not _named(docs, "Job"), "a fixed-name Job cannot be applied twice"


def test_disruption_budgets_cover_every_workload_and_the_executor_autoscales(
    docs: list[Doc],
) -> None:
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app"]: d
        for d in _named(docs, "PodDisruptionBudget").values()
    }
    workloads = [*_named(docs, "Deployment").values(), *_named(docs, "StatefulSet").values()]
    for doc in workloads:
        app = doc["spec"]["selector"]["matchLabels"]["app"]
        assert app in budgets, doc["metadata"]["name"]
    (hpa,) = _named(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "autom-executor"
    assert hpa["spec"]["minReplicas"] >= 2
    # A replica count in the Deployment would fight the autoscaler on every apply.
    assert "replicas" not in _named(docs, "Deployment")["autom-executor"]["spec"]


def _secret_env_names(settings_cls: type) -> set[str]:
    """The environment variables of a settings class's secret fields."""
    names = set()
    for field_name, info in settings_cls.model_fields.items():  # type: ignore[attr-defined]
        if SecretStr not in (info.annotation, *typing.get_args(info.annotation)):
            continue
        alias = info.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"AUTOM_{field_name}"
        names.add(str(env).upper())
    return names


def test_every_secret_setting_is_in_the_template_and_reaches_only_its_service(
    docs: list[Doc], secrets: dict[str, set[str]]
) -> None:
    from autom.definitions.settings import DefinitionsSettings
    from autom.drafter.settings import DrafterSettings
    from autom.executor.settings import ExecutorSettings
    from autom.scheduler.settings import SchedulerSettings

    # Settings every service has but only some are given, pinned by tests/test_deploy_nats.py
    # (each its own NATS password, by secretKeyRef) and tests/test_deploy_keys.py (a service
    # credential for the services that call definitions).
    # AUTOM_AUTH_SECRET is the legacy single secret a deployment should not set at all.
    placed_elsewhere = {"AUTOM_NATS_PASSWORD", "AUTOM_SERVICE_CREDENTIAL", "AUTOM_AUTH_SECRET"}
    needs = {
        "definitions": _secret_env_names(DefinitionsSettings) - placed_elsewhere,
        "scheduler": _secret_env_names(SchedulerSettings) - placed_elsewhere,
        "executor": _secret_env_names(ExecutorSettings) - placed_elsewhere,
        "drafter": _secret_env_names(DrafterSettings) - placed_elsewhere,
    }
    assert "AUTOM_AUTH_PRIVATE_KEY" in needs["definitions"]
    assert "AUTOM_SECRETS_KEY" in needs["definitions"]
    assert "AUTOM_PAGE_TOKEN_KEY" in needs["scheduler"]
    deployments = _named(docs, "Deployment")
    mounted: dict[str, set[str]] = {}
    for name, doc in deployments.items():
        refs = {
            ref["secretRef"]["name"]
            for c in _containers(doc)
            for ref in c.get("envFrom", [])
            if "secretRef" in ref
        }
        assert refs <= set(secrets), (name, refs - set(secrets))
        mounted[name] = set().union(*(secrets[r] for r in refs))
    for service, keys in needs.items():
        held = mounted[f"autom-{service}"]
        assert keys | {"AUTOM_DATABASE_URL"} <= held, (service, keys - held)
        # A key another service needs and this one does not stays out of it.
        others = set().union(*(k for s, k in needs.items() if s != service)) - needs[service]
        assert not held & others, (service, held & others)
    assert mounted["autom-gateway"] == set()


def test_postgres_comes_from_a_cloudnativepg_cluster_the_services_point_at(
    repo_root: Path, secrets: dict[str, set[str]]
) -> None:
    cnpg = _named(_load(repo_root, "postgres-cnpg.yaml"), "Cluster")["autom-db"]
    assert cnpg["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cnpg["spec"]["instances"] >= 3
    assert cnpg["spec"]["bootstrap"]["initdb"]["database"] == "autom"
    assert cnpg["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
    (template,) = (
        d for d in _load(repo_root, "secrets.example.yaml") if d["metadata"]["name"] == "autom"
    )
    url = urlsplit(template["stringData"]["AUTOM_DATABASE_URL"])
    assert url.hostname == "autom-db-rw" and url.path == "/autom"  # the operator's rw Service


def test_nats_is_a_three_node_jetstream_cluster_with_r3_streams(docs: list[Doc]) -> None:
    sts = _named(docs, "StatefulSet")["nats"]
    assert sts["spec"]["replicas"] == 3
    config = _named(docs, "ConfigMap")
    assert "sync_interval: always" in config["nats-config"]["data"]["nats.conf"]
    env = config["autom"]["data"]
    assert env["AUTOM_NATS_STREAM_REPLICAS"] == "3"
    assert sorted(urlsplit(u).hostname for u in env["AUTOM_NATS_URL"].split(",")) == [
        "nats-0.nats",
        "nats-1.nats",
        "nats-2.nats",
    ]
