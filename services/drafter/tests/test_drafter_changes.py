"""What a change draft changes."""

from __future__ import annotations

from autom.drafter.domain.changes import describe_changes

BASE = {
    "name": "digest",
    "triggers": [{"type": "schedule", "config": {"cron": "0 9 * * 1", "timezone": "UTC"}}],
    "plan": [
        {"id": "fetch", "action": "http_request", "params": {"url": "https://a"}},
        {"id": "post", "action": "http_request", "params": {"url": "https://b"}},
    ],
    "metadata": {"created_from_nl": True, "draft_id": "d1"},
}


def test_no_change_no_lines() -> None:
    assert describe_changes(BASE, dict(BASE)) == []


def test_cron_and_steps_changes_are_listed() -> None:
    new = {
        "name": "digest",
        "description": "weekly",
        "triggers": [{"type": "schedule", "config": {"cron": "0 10 * * 1", "timezone": "UTC"}}],
        "plan": [
            {"id": "fetch", "action": "http_request", "params": {"url": "https://a2"}},
            {"id": "slack", "action": "http_request", "params": {"url": "https://s"}},
        ],
    }
    lines = describe_changes(BASE, new)
    assert 'triggers[0].config.cron: "0 9 * * 1" -> "0 10 * * 1"' in lines
    assert 'description: set to "weekly"' in lines
    assert "step slack: added (http_request)" in lines
    assert "step post: removed (http_request)" in lines
    assert 'step fetch.params.url: "https://a" -> "https://a2"' in lines
    assert not any(line.startswith("metadata") for line in lines)


def test_reordered_steps() -> None:
    new = {**BASE, "plan": list(reversed(BASE["plan"]))}  # type: ignore[call-overload]
    assert describe_changes(BASE, new) == ["plan: steps reordered"]
