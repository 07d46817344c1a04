"""`autom-drafter [serve|migrate]`."""

from __future__ import annotations

from autom.core.runtime import run_service
from autom.drafter import db
from autom.drafter.app import build_app
from autom.drafter.settings import DrafterSettings


def main() -> None:
    """Entry point: serve (default) or migrate."""
    run_service(DrafterSettings, build_app, migrate=db.migrate)


if __name__ == "__main__":
    main()
