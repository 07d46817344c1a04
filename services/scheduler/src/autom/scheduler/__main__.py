"""`autom-scheduler [serve|migrate]`."""

from __future__ import annotations

from autom.core.runtime import run_service
from autom.scheduler import db
from autom.scheduler.app import build_app
from autom.scheduler.settings import SchedulerSettings


def main() -> None:
    """Entry point: serve (default) or migrate."""
    run_service(SchedulerSettings, build_app, migrate=db.migrate)


if __name__ == "__main__":
    main()
