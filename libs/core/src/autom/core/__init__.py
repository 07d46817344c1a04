"""autom.core."""

import sys

# No service runs httpx's command line, yet `import httpx` loads it (click, rich, pygments:
# 3.6 MB and ~80 modules per process) whenever those happen to be installed. A None entry
# makes that optional import fail as if they were not, and httpx falls back to a stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
