"""FaultStack's shape before anything starts: instances and where clients find them."""

from __future__ import annotations

from pathlib import Path

from autom.devstack.faults import FaultStack
from autom.devstack.testing import TEST_SIGNING_KEY


def test_every_instance_has_its_own_address(tmp_path: Path) -> None:
    stack = FaultStack(
        tmp_path, signing_key=TEST_SIGNING_KEY, nats_nodes=3, replicas={"executor": 3}
    )
    assert stack.instances == ["definitions", "scheduler", "executor", "executor-2", "executor-3"]
    addresses = {name: stack.address(name) for name in stack.instances}
    assert len(set(addresses.values())) == len(addresses)
    # The first instance serves on the service's port, where the other services look for it.
    assert addresses["executor"] == f"127.0.0.1:{stack.config.executor_port}"
    assert addresses["definitions"] == f"127.0.0.1:{stack.config.definitions_port}"
    assert all(stack.pid(name) is None for name in stack.instances)
