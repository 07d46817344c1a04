"""The drafter shares code only through libs/: it never imports another service's package."""

from __future__ import annotations

import ast
from pathlib import Path

OTHER_SERVICES = ("definitions", "scheduler", "executor", "gateway")
SRC = Path(__file__).resolve().parents[1] / "src" / "autom" / "drafter"


def test_drafter_imports_no_other_service() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name.startswith(f"autom.{svc}") for svc in OTHER_SERVICES):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
