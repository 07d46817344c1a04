"""The alert rules and the Grafana dashboard in deploy/ only query metrics Autom exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from autom.core import metrics

_NAME = re.compile(r"\b(autom_[a-z_]+|grpc_server_[a-z_]+|process_[a-z_]+|up)\b")


def exported() -> set[str]:
    """Every sample name autom.core.metrics exports, plus the scrape's and the process's."""
    names = {"up", "process_resident_memory_bytes", "process_cpu_seconds_total"}
    for metric in vars(metrics).values():
        for family in metric.describe() if isinstance(metric, Counter | Gauge | Histogram) else []:
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
            else:
                names.add(family.name)
    return names


def test_every_alert_queries_exported_metrics_and_says_what_is_wrong(repo_root: Path) -> None:
    rules = yaml.safe_load((repo_root / "deploy/prometheus/alerts.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    assert {
        "AutomFireLagHigh", "AutomRunsFailing", "AutomOutboxBacklog",
        "AutomConsumerRedeliveries", "AutomNoSchedulerAlive",
    } <= names  # fmt: skip
    known = exported()
    for rule in alerts:
        used = set(_NAME.findall(rule["expr"]))
        assert used and used <= known, (rule["alert"], used - known)
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_the_dashboard_charts_only_exported_metrics(repo_root: Path) -> None:
    dashboard = json.loads((repo_root / "deploy/grafana/autom-dashboard.json").read_text())
    known = exported()
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(_NAME.findall(target["expr"]))
            assert used and used <= known, (panel["title"], used - known)
            queried |= used
    assert {"autom_fire_publish_lag_seconds_bucket", "autom_runs_total",
            "autom_outbox_oldest_age_seconds", "grpc_server_handled_total",
            "autom_llm_cost_usd_total"} <= queried  # fmt: skip
