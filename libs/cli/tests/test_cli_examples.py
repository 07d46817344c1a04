"""Every definition under examples/ parses into the proto and is well formed."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from google.protobuf import json_format
from jinja2.sandbox import ImmutableSandboxedEnvironment

from autom.cli.files import load_definition, read_document
from autom.core.registry import build_catalog

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))
STEP_ID = re.compile(r"[a-z][a-z0-9_]*")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def test_the_promised_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"heartbeat", "weekday-digest", "guarded-flow"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_parses_and_is_well_formed(path: Path) -> None:
    definition = load_definition(str(path))
    # Exactly the envelope: nothing in the file was dropped on the way into the proto.
    raw = read_document(str(path))
    assert set(raw) <= {f.name for f in definition.DESCRIPTOR.fields}
    assert NAME.fullmatch(definition.name)
    assert path.stem == definition.name
    steps = [*definition.plan, *definition.execution.on_failure]
    ids = [s.id for s in steps]
    assert len(ids) == len(set(ids)), f"duplicate step ids in {path.name}: {ids}"
    assert all(STEP_ID.fullmatch(i) for i in ids), ids
    assert definition.triggers, "every example has a trigger"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_matches_the_catalog_schemas(path: Path) -> None:
    catalog = build_catalog(plugins=False)
    definition = load_definition(str(path))
    for i, trigger in enumerate(definition.triggers):
        entry = catalog.triggers.get(trigger.type)
        assert entry is not None, f"triggers[{i}]: unknown type {trigger.type}"
        jsonschema.validate(json_format.MessageToDict(trigger.config), entry.config_schema)
    for step in [*definition.plan, *definition.execution.on_failure]:
        entry = catalog.actions.get(step.action)
        assert entry is not None, f"{step.id}: unknown action {step.action}"
        jsonschema.validate(json_format.MessageToDict(step.params), entry.params_schema)
    schema = json_format.MessageToDict(definition.inputs.schema)
    if schema:
        jsonschema.Draft202012Validator.check_schema(schema)
        for trigger in definition.triggers:
            jsonschema.validate(json_format.MessageToDict(trigger.inputs), schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_templates_parse(path: Path) -> None:
    env = ImmutableSandboxedEnvironment()
    text = path.read_text()
    templates = TEMPLATE.findall(text)
    assert templates or path.stem == "heartbeat"
    definition = load_definition(str(path))
    for step in [*definition.plan, *definition.execution.on_failure]:
        if step.when:
            env.parse(step.when)
        for value in _strings(json_format.MessageToDict(step.params)):
            env.parse(value)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
