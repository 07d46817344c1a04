"""`autom-executor [serve|migrate]`."""

from __future__ import annotations

from autom.core.runtime import run_service
from autom.executor import db
from autom.executor.app import build_app
from autom.executor.settings import ExecutorSettings


def main() -> None:
    """Entry point: serve (default) or migrate."""
    run_service(ExecutorSettings, build_app, migrate=db.migrate)


if __name__ == "__main__":
    main()
