"""The `make run` supervisor, driven end to end with fake services (tests/fake_stack.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autom.devstack.ports import free_port
from autom.devstack.run import GRPC_SERVICES
from autom.devstack.testing import postgres_scratch_dir

FAKE_STACK = Path(__file__).with_name("fake_stack.py")
BANNER = "Autom is running"
# Minutes of waiting on its own processes: a worker of its own under `make test`.
pytestmark = pytest.mark.xdist_group("apart")


class RunningStack:
    """A supervisor subprocess whose output is collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_STACK), "supervise"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for raw in self.proc.stdout:
                with self._cond:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> int:
        """Index of the first output line matching `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, line in enumerate(self.lines):
                    if regex.search(line):
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}:\n{self.output}")
                self._cond.wait(min(remaining, 0.2))

    def wait_exit(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def descendants(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def index(self, pattern: str) -> int:
        return self.wait_for(pattern, timeout=0)


def _gone(proc: psutil.Process) -> bool:
    try:
        status: str = proc.status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


def assert_all_gone(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in procs if not _gone(p)]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"still running: {[(p.pid, p.name()) for p in alive]}")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    with postgres_scratch_dir(tmp_path) as pg_dir:
        yield pg_dir.with_name("home")


@pytest.fixture
def stack_env(tmp_path: Path, home: Path) -> dict[str, str]:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOM_", "FAKE_"))}
    env.pop("FORCE_COLOR", None)
    env.update(
        AUTOM_HOME=str(home),
        AUTOM_PG_PORT=str(free_port()),
        AUTOM_NATS_PORT=str(free_port()),
        AUTOM_DEFINITIONS_PORT=str(free_port()),
        AUTOM_SCHEDULER_PORT=str(free_port()),
        AUTOM_EXECUTOR_PORT=str(free_port()),
        AUTOM_DRAFTER_PORT=str(free_port()),
        AUTOM_HTTP_PORT=str(free_port()),
        FAKE_ENV_DIR=str(env_dir),
    )
    return env


@pytest.fixture
def launch() -> Iterator[type[RunningStack]]:
    """Start supervisors; whatever a failed test leaves running is killed."""
    started: list[tuple[RunningStack, list[psutil.Process]]] = []

    class Tracked(RunningStack):
        def __init__(self, env: dict[str, str]) -> None:
            super().__init__(env)
            started.append((self, []))

        def descendants(self) -> list[psutil.Process]:
            found = super().descendants()
            for stack, seen in started:
                if stack is self:
                    seen.extend(found)
            return found

    yield Tracked
    for stack, seen in started:
        if stack.proc.poll() is None:
            stack.proc.kill()
        stack.wait_exit()
        for proc in seen:
            if not _gone(proc):
                proc.kill()


def _names(procs: list[psutil.Process]) -> set[str]:
    return {p.name() for p in procs}


def test_supervisor_brings_stack_up_and_sigterm_stops_everything_in_order(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch(stack_env)
    banner = stack.wait_for(BANNER)

    # Ready only once every fake said "serving" (they start NOT_SERVING).
    for name in (*GRPC_SERVICES, "gateway"):
        assert stack.index(rf"^\d\d:\d\d:\d\d {name} +\| fake {name} serving$") < banner
    # stdout and stderr both arrive, prefixed with the padded service name.
    assert stack.index(r"^\d\d:\d\d:\d\d definitions \| fake definitions says hello on stderr$")
    assert stack.index(r"^\d\d:\d\d:\d\d gateway     \| fake gateway listening on http")
    assert "\x1b[" not in stack.output  # not a TTY, no FORCE_COLOR
    # Every migration finished before any service started (they run side by side).
    migrated = [stack.index(rf"fake {name} migrated$") for name in GRPC_SERVICES]
    assert max(migrated) < stack.index(r"starting definitions: ")
    # The dev token is the last non-empty stdout line of `dev-token`.
    assert stack.index(r"^  export AUTOM_TOKEN=fake-token-123$") > banner

    procs = stack.descendants()
    assert {"postgres", "nats-server"} <= _names(procs)

    stack.proc.send_signal(signal.SIGTERM)
    assert stack.wait_exit(30) == 0
    # Dependents first: the executor outlives the scheduler that dispatches to it.
    order = ("gateway", "drafter", "scheduler", "executor", "definitions")
    stops = [stack.index(rf"fake {name} stopping$") for name in order]
    assert stops == sorted(stops)
    assert_all_gone(procs)
    assert "AUTOM_AUTH_PRIVATE_KEY" not in stack.output


def test_children_get_the_documented_environment(
    launch: type[RunningStack], stack_env: dict[str, str], home: Path
) -> None:
    stack = launch(stack_env)
    stack.wait_for(BANNER)
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.wait_exit(30) == 0

    env_dir = Path(stack_env["FAKE_ENV_DIR"])
    secrets = json.loads((home / "dev-secrets.json").read_text())
    assert (home / "dev-secrets.json").stat().st_mode & 0o777 == 0o600
    ports = {name: stack_env[f"AUTOM_{name.upper()}_PORT"] for name in GRPC_SERVICES}
    common = {
        "AUTOM_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{stack_env['AUTOM_PG_PORT']}/autom",
        "AUTOM_NATS_URL": f"nats://127.0.0.1:{stack_env['AUTOM_NATS_PORT']}",
        "AUTOM_GRPC_HOST": "127.0.0.1",
        **{f"AUTOM_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()},
        "PYTHONUNBUFFERED": "1",
    }
    for name in GRPC_SERVICES:
        for what in ("migrate", "serve"):
            env = json.loads((env_dir / f"{name}.{what}.json").read_text())
            keys = {"AUTOM_PAGE_TOKEN_KEY": secrets["page_token_key"]}
            if name == "definitions":
                keys["AUTOM_SECRETS_KEY"] = secrets["secrets_key"]
                keys["AUTOM_AUTH_PRIVATE_KEY"] = secrets["auth_private_key"]
            else:
                assert not {"AUTOM_SECRETS_KEY", "AUTOM_AUTH_PRIVATE_KEY"} & set(env)
                assert env["AUTOM_AUTH_PUBLIC_KEYS"]
            if name in ("scheduler", "executor"):
                keys["AUTOM_SERVICE_CREDENTIAL"] = secrets[f"{name}_credential"]
            assert env.items() >= {**common, **keys, "AUTOM_GRPC_PORT": ports[name]}.items()
    gateway = json.loads((env_dir / "gateway.serve.json").read_text())
    assert gateway.items() >= common.items()
    assert not {k for k in gateway if k.startswith(("AUTOM_AUTH_", "AUTOM_SECRET"))}
    assert not {"AUTOM_SERVICE_CREDENTIAL", "AUTOM_PAGE_TOKEN_KEY"} & set(gateway)
    assert gateway["AUTOM_HTTP_HOST"] == "127.0.0.1"
    assert gateway["AUTOM_HTTP_PORT"] == stack_env["AUTOM_HTTP_PORT"]
    assert "AUTOM_GRPC_PORT" not in gateway
    token_env = json.loads((env_dir / "definitions.dev-token.json").read_text())
    assert token_env["AUTOM_GRPC_PORT"] == ports["definitions"]
    assert secrets["auth_private_key"] not in stack.output


def test_second_run_reuses_database_and_secrets(
    launch: type[RunningStack], stack_env: dict[str, str], home: Path
) -> None:
    first = launch(stack_env)
    first.wait_for(BANNER)
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0
    secrets = (home / "dev-secrets.json").read_text()

    second = launch(stack_env)
    second.wait_for(BANNER)
    second.proc.send_signal(signal.SIGINT)
    assert second.wait_exit(30) == 0
    assert "initialising PostgreSQL cluster" in first.output
    assert "initialising PostgreSQL cluster" not in second.output
    assert (home / "dev-secrets.json").read_text() == secrets


def test_service_exiting_before_ready_fails_the_run(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch({**stack_env, "FAKE_EXIT_EARLY": "scheduler"})
    assert stack.wait_exit(30) == 1
    assert stack.index(r"scheduler +\| fake scheduler crashing$")
    assert stack.index(r"scheduler exited with code 3 before it was ready")
    assert BANNER not in stack.output
    assert stack.index(r"stopping PostgreSQL")


def test_service_dying_while_running_stops_everything_with_failure(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch(stack_env)
    stack.wait_for(BANNER)
    procs = stack.descendants()
    (executor,) = [p for p in procs if p.cmdline()[-2:] == ["serve", "executor"]]
    executor.kill()
    assert stack.wait_exit(30) == 1
    assert stack.index(r"executor exited unexpectedly with code -9; stopping everything")
    assert_all_gone(procs)


def test_failed_migration_fails_the_run_and_shows_its_output(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch({**stack_env, "FAKE_MIGRATE_FAIL": "executor"})
    assert stack.wait_exit(30) == 1
    assert stack.index(r"executor +\| fake executor migration boom$")
    assert stack.index(r"executor migration failed: .* exited with code 1")
    assert "starting definitions" not in stack.output


def test_killed_supervisor_leaves_no_orphans(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch(stack_env)
    stack.wait_for(BANNER)
    procs = stack.descendants()
    assert len(procs) >= 7  # five services, postgres (and its workers), nats-server

    stack.proc.kill()
    stack.wait_exit()
    assert_all_gone(procs)


def test_signal_during_startup_stops_the_hanging_step_and_exits_cleanly(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch({**stack_env, "FAKE_MIGRATE_HANG": "scheduler"})
    stack.wait_for(r"fake scheduler migration hangs$")
    procs = stack.descendants()
    assert any(p.cmdline()[-2:] == ["migrate", "scheduler"] for p in procs)

    stack.proc.send_signal(signal.SIGTERM)

    assert stack.wait_exit(30) == 0
    assert "starting definitions" not in stack.output
    assert_all_gone(procs)


def test_second_signal_kills_a_service_that_ignores_sigterm(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch({**stack_env, "FAKE_IGNORE_SIGTERM": "gateway"})
    stack.wait_for(BANNER)
    procs = stack.descendants()

    first = time.monotonic()
    stack.proc.send_signal(signal.SIGINT)
    stack.wait_for(r"fake gateway ignoring SIGTERM$")
    stack.proc.send_signal(signal.SIGINT)  # an echo of the first: ignored
    # A repeat within 0.5 s counts as the same Ctrl-C delivered twice; wait that out.
    time.sleep(max(0.0, first + 0.6 - time.monotonic()))
    started = time.monotonic()
    stack.proc.send_signal(signal.SIGINT)

    assert stack.wait_exit(30) == 0
    assert time.monotonic() - started < 5  # not the 10 s grace period
    assert stack.output.count("SIGINT again: killing everything now") == 1
    assert_all_gone(procs)


def test_migrations_run_side_by_side(
    launch: type[RunningStack], stack_env: dict[str, str], tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # Each fake migration waits until all four have started: one at a time never finishes.
    stack = launch({**stack_env, "FAKE_MIGRATE_BARRIER": str(barrier)})
    stack.wait_for(BANNER)
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.wait_exit(30) == 0
    assert "migration waited alone" not in stack.output


def test_dev_token_is_kept_and_reused_until_it_is_refused(
    launch: type[RunningStack], stack_env: dict[str, str], home: Path
) -> None:
    mints = Path(stack_env["FAKE_ENV_DIR"]) / "mints"

    def run_once(env: dict[str, str]) -> RunningStack:
        stack = launch(env)
        stack.wait_for(BANNER)
        stack.wait_for(r"^  export AUTOM_TOKEN=fake-token-123$")
        stack.proc.send_signal(signal.SIGTERM)
        assert stack.wait_exit(30) == 0
        return stack

    first = run_once(stack_env)
    stored = home / "dev-token"
    assert stored.read_text() == "fake-token-123\n"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert first.index(r"^Dev token \(new, kept in .*dev-token for the next runs\):$")

    second = run_once(stack_env)
    assert mints.read_text().count("minted") == 1  # accepted by WhoAmI: not minted again
    assert second.index(r"^Dev token \(reused from .*dev-token\):$")

    third = run_once({**stack_env, "FAKE_REJECT_TOKENS": "1"})  # e.g. the auth secret changed
    assert mints.read_text().count("minted") == 2
    assert third.index(r"dev token in .* is no longer accepted \(UNAUTHENTICATED")


def test_health_polls_leave_no_access_log_lines(
    launch: type[RunningStack], stack_env: dict[str, str]
) -> None:
    stack = launch(stack_env)
    stack.wait_for(BANNER)
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.wait_exit(30) == 0
    # The fake gateway answered 503 three times and logged every poll, like uvicorn does.
    assert stack.index(r"gateway +\| fake gateway serving$")
    assert "GET /healthz" not in stack.output
