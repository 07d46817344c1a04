"""Run every benchmark in its own process and print one JSON object of their figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench import durability

# `api` is what users see (the `make run` stack through the public API), `scaleout` the same
# API on a loopback cluster; the others measure one component in-process.
BENCHES = ("api", "chain40", "executor_throughput", "scheduler_lag", "scaleout")


def main() -> int:
    """Each bench prints one JSON object as its last line of stdout."""
    only = sys.argv[1:] or list(BENCHES)
    # Figures mean little without the fsync policy they were measured under.
    results: dict[str, object] = {"durability": durability()}
    failed = False
    for name in only:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"], capture_output=True, text=True, check=False
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        try:
            results[name] = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
        except json.JSONDecodeError:
            results[name] = None
        if results[name] is None:
            failed = True
            results[name] = {"error": (proc.stderr or proc.stdout)[-2000:]}
        print(f"{name}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
