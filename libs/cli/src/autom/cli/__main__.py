"""`autom` / `python -m autom.cli`."""

from __future__ import annotations

from autom.cli.app import app


def main() -> None:
    """Entry point of the `autom` console script."""
    app(prog_name="autom")


if __name__ == "__main__":
    main()
