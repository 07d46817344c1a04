"""The system prompt and repair messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from autom.core.errors import Violation
from autom.core.registry import build_catalog
from autom.drafter.domain.examples import EXAMPLES
from autom.drafter.domain.prompt import CatalogEntry, SchemaInfo, repair_message, system_prompt

SCHEMA = SchemaInfo(
    envelope={"title": "Definition", "type": "object"},
    actions=[CatalogEntry("http_request", "Send a request.", {"type": "object"}, {"x": 1})],
    triggers=[CatalogEntry("schedule", "Fire on cron.", {"required": ["cron"]})],
    capabilities=[],
)


def test_system_prompt_holds_schema_catalog_time_zone_and_examples() -> None:
    now = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)
    prompt = system_prompt(SCHEMA, now=now, timezone="Asia/Tokyo")
    assert '{"title":"Definition","type":"object"}' in prompt
    assert "- http_request: Send a request." in prompt
    assert '- schedule: Fire on cron.\n  config schema: {"required":["cron"]}' in prompt
    assert "2026-11-22T07:30:00Z" in prompt
    assert "Sunday 2026-11-22 16:30" in prompt and "Asia/Tokyo" in prompt
    for key in ('"definition"', '"questions"', '"out_of_scope"'):
        assert key in prompt
    for ex in EXAMPLES:
        assert ex.intent in prompt
        assert json.dumps(ex.reply, separators=(",", ":"), ensure_ascii=False) in prompt
    assert "changing an existing automation" not in prompt


def test_change_prompt_includes_the_base_definition() -> None:
    prompt = system_prompt(
        SCHEMA,
        now=datetime.now(UTC),
        timezone="UTC",
        base_definition={"name": "old-one", "plan": []},
    )
    assert "changing an existing automation" in prompt
    assert '{"name":"old-one","plan":[]}' in prompt


def test_repair_message_lists_every_violation() -> None:
    text = repair_message([Violation("plan[0].action", "unknown"), Violation("name", "bad")])
    assert "- plan[0].action: unknown" in text and "- name: bad" in text


def test_examples_cover_the_required_shapes() -> None:
    definitions = [ex.reply["definition"] for ex in EXAMPLES if "definition" in ex.reply]
    actions = {s["action"] for d in definitions for s in d["plan"]}
    assert {"http_request", "agent_task"} <= actions
    assert any("output_schema" in s["params"] for d in definitions for s in d["plan"])
    assert any("when" in s for d in definitions for s in d["plan"])
    assert {d["triggers"][0]["type"] for d in definitions} == {"schedule", "webhook"}


def test_prompt_and_examples_never_offer_a_trigger_level_overlap() -> None:
    catalog = build_catalog(plugins=False)
    live = SchemaInfo(
        envelope={"type": "object"},
        actions=[],
        triggers=[
            CatalogEntry(t.type, t.description, t.config_schema) for t in catalog.triggers.all()
        ],
        capabilities=[],
    )
    prompt = system_prompt(live, now=datetime.now(UTC), timezone="UTC")
    # Overlap has one knob, execution.concurrency; examples teach the model to use it.
    assert "overlap" not in prompt
    definitions = [ex.reply["definition"] for ex in EXAMPLES if "definition" in ex.reply]
    assert all("overlap" not in t.get("config", {}) for d in definitions for t in d["triggers"])
