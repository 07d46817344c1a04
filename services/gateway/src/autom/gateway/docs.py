"""A self-contained API reference page (inline CSS and JS, no external assets)."""

from __future__ import annotations

from importlib import resources


def docs_html() -> str:
    """The docs page; it fetches `openapi.json` from the same origin and renders it."""
    return resources.files(__package__).joinpath("docs.html").read_text(encoding="utf-8")
