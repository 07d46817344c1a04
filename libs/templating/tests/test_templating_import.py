"""Importing the package does no work: no environment, no compiled templates."""

from __future__ import annotations

import subprocess
import sys


def test_import_builds_nothing() -> None:
    code = (
        "import autom.templating as t\n"
        "assert t.default_engine.cache_info().currsize == 0\n"
        "assert t.render_value('{{ 1 }}', {}, path='p') == 1\n"
        "assert t.default_engine.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
