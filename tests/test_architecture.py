"""Architecture rules checked on the source: service isolation and the permission table."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from autom.core.auth import METHOD_PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir())
SERVICE_MODULES = {
    "definitions": "autom.api.definitions.v1.definitions_service_pb2",
    "scheduler": "autom.api.scheduler.v1.scheduler_service_pb2",
    "executor": "autom.api.executor.v1.executor_service_pb2",
    "drafter": "autom.api.drafter.v1.drafter_service_pb2",
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another_service_package(service: str) -> None:
    others = {f"autom.{s}" for s in SERVICES if s != service}
    offenders = []
    for path in (ROOT / "services" / service / "src").rglob("*.py"):
        for module in _imported_modules(path):
            if any(module == o or module.startswith(o + ".") for o in others):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_libs_import_no_service_package() -> None:
    services = {f"autom.{s}" for s in SERVICES}
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "libs").glob("*/src/**/*.py")
        if "protos" not in path.parts
        for module in _imported_modules(path)
        if any(module == s or module.startswith(s + ".") for s in services)
    ]
    assert offenders == []


def test_every_rpc_of_every_service_is_in_the_permission_table() -> None:
    rpcs = set()
    for module_name in SERVICE_MODULES.values():
        module = importlib.import_module(module_name)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.add(f"/{service.full_name}/{method.name}")
    missing = sorted(rpcs - set(METHOD_PERMISSIONS))
    assert missing == [], f"RPCs without a permission entry (denied by default): {missing}"
    stale = sorted(m for m in METHOD_PERMISSIONS if m.startswith("/autom.") and m not in rpcs)
    assert stale == []


def test_unmapped_method_is_denied() -> None:
    from autom.core.auth import (
        Role,
        TokenSigner,
        authorize,
        generate_private_key,
        private_key_text,
    )
    from autom.core.errors import PermissionDenied, Unauthenticated

    signer = TokenSigner(private_key_text(generate_private_key()))
    owner, _, _ = signer.issue(subject="user:o", workspace_id="w", role=Role.OWNER)
    with pytest.raises(PermissionDenied):
        authorize("/autom.api.x.v1.Nope/Do", {"authorization": f"Bearer {owner}"}, signer)
    # Without a token it is refused before anything else, like every protected method.
    with pytest.raises(Unauthenticated):
        authorize("/autom.api.x.v1.Nope/Do", {}, signer)
