"""Fault suite plumbing: a test's fixtures learn whether its call failed (to print logs)."""

from __future__ import annotations

from collections.abc import Generator

import pytest

FAILED_ATTR = "fault_call_failed"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        setattr(item, FAILED_ATTR, True)
    return report
