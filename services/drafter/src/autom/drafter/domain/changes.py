"""Human lines saying what a change draft changes against the automation's base version."""

from __future__ import annotations

import json
from typing import Any

_IGNORED = {"metadata"}  # provenance the drafter rewrites on approval, not a user change


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _diff(path: str, old: Any, new: Any, out: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else key
            if key not in new:
                out.append(f"{sub}: removed (was {_show(old[key])})")
            elif key not in old:
                out.append(f"{sub}: set to {_show(new[key])}")
            else:
                _diff(sub, old[key], new[key], out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(f"{path}[{i}]", a, b, out)
        return
    out.append(f"{path}: {_show(old)} -> {_show(new)}")


def _steps(definition: dict[str, Any], key: str = "plan") -> dict[str, dict[str, Any]]:
    steps = definition.get(key) or []
    return {s["id"]: s for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}


def describe_changes(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changes from `base` to `new`, one line per change; steps are matched by id."""
    out: list[str] = []
    for key in sorted((base.keys() | new.keys()) - {"plan"} - _IGNORED):
        old_value, new_value = base.get(key), new.get(key)
        if old_value is None and new_value is not None:
            out.append(f"{key}: set to {_show(new_value)}")
        elif new_value is None and old_value is not None:
            out.append(f"{key}: removed")
        else:
            _diff(key, old_value, new_value, out)
    old_steps, new_steps = _steps(base), _steps(new)
    for sid, step in new_steps.items():
        if sid not in old_steps:
            out.append(f"step {sid}: added ({step.get('action', '?')})")
    for sid, step in old_steps.items():
        if sid not in new_steps:
            out.append(f"step {sid}: removed ({step.get('action', '?')})")
        else:
            _diff(f"step {sid}", step, new_steps[sid], out)
    if [s for s in old_steps if s in new_steps] != [s for s in new_steps if s in old_steps]:
        out.append("plan: steps reordered")
    return out
