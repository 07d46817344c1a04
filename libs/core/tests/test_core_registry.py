"""The catalog registries: built-ins, duplicates, misses and third-party entry points."""

from __future__ import annotations

from typing import Any

import pytest

from autom.core import registry
from autom.core.registry import ActionType, Registry, build_catalog


def test_builtins_are_registered_and_lookups_miss_with_none() -> None:
    catalog = build_catalog(plugins=False)
    assert {a.type for a in catalog.actions.all()} == {
        "transform",
        "http_request",
        "wait",
        "log",
        "emit_event",
        "agent_task",
    }
    assert catalog.actions.get("teleport") is None
    assert catalog.triggers.get("schedule") is not None


def test_duplicates_raise_and_all_returns_a_copy() -> None:
    reg: Registry[ActionType] = Registry(lambda a: a.type)
    entry = ActionType(type="x", description="x", params_schema={})
    reg.register(entry)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(entry)
    listed = reg.all()
    listed.clear()
    assert reg.all() == [entry]


class _EntryPoint:
    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self._value = value

    def load(self) -> Any:
        return self._value


def test_third_party_actions_load_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    slack = ActionType(type="slack_post", description="Post to Slack", params_schema={})

    def fake_entry_points(group: str) -> list[_EntryPoint]:
        if group == "autom.actions":
            return [_EntryPoint("slack", lambda: [slack]), _EntryPoint("broken", 42)]
        return []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    catalog = build_catalog()
    assert catalog.actions.get("slack_post") is slack
    assert catalog.actions.get("transform") is not None  # a broken plugin costs nothing else


def test_an_entrys_validator_is_built_once_and_checks_its_schema() -> None:
    catalog = build_catalog(plugins=False)
    wait, schedule = catalog.actions.get("wait"), catalog.triggers.get("schedule")
    assert wait is not None and schedule is not None
    # Every definition validated re-used it: building one walks the whole schema.
    assert wait.params_validator is wait.params_validator
    assert schedule.config_validator is schedule.config_validator
    assert not list(wait.params_validator.iter_errors({"duration": "1s"}))
    assert list(wait.params_validator.iter_errors({"duration": 5}))
    assert not list(schedule.config_validator.iter_errors({"cron": "0 9 * * *"}))
    assert list(schedule.config_validator.iter_errors({"cron": 9}))
