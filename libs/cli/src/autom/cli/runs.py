"""`autom run` and `autom runs ...`: start, watch and inspect runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from autom.api.definitions.v1 import definitions_service_pb2
from autom.api.executor.v1 import executor_pb2, executor_service_pb2
from autom.cli.client import Api
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.errors import CliError, ExitCode
from autom.cli.files import parse_inputs
from autom.cli.output import Out, elapsed, enum_label, ts

DS = definitions_service_pb2
ES = executor_service_pb2
app = typer.Typer(help="Inspect, cancel, retry and watch runs.", no_args_is_help=True)

TERMINAL = {
    executor_pb2.RUN_STATUS_SUCCEEDED,
    executor_pb2.RUN_STATUS_FAILED,
    executor_pb2.RUN_STATUS_CANCELLED,
    executor_pb2.RUN_STATUS_TIMED_OUT,
    executor_pb2.RUN_STATUS_SKIPPED,
}
STYLE = {
    "succeeded": "green",
    "refused": "red",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "pending": "dim",
}
MARK = {
    "succeeded": "✓",
    "failed": "✗",
    "timed_out": "⏱",
    "cancelled": "⊘",
    "skipped": "↷",
    "running": "…",
    "pending": "·",
}
RUN_STATUSES = [
    n.removeprefix("RUN_STATUS_").lower()
    for n in executor_pb2.RunStatus.DESCRIPTOR.values_by_name
    if n != "RUN_STATUS_UNSPECIFIED"
]
RunIdArgument = Annotated[str, typer.Argument(help="Run id.")]
WatchOption = Annotated[
    bool, typer.Option("--watch", "-w", help="Follow the run step by step until it ends.")
]


class AutomationNames:
    """Automation ids <-> names through GetAutomation, each looked up once."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._names: dict[str, str] = {}
        self._reachable = True

    def resolve(self, ref: str) -> str:
        """The id of the automation named or identified by `ref` (NOT_FOUND exits 3)."""
        automation = self._api.call(
            "definitions", "GetAutomation", DS.GetAutomationRequest(automation_id=ref)
        ).automation
        self._names[automation.id] = automation.name
        return str(automation.id)

    def name(self, automation_id: str) -> str:
        """Its name; the id itself when it cannot be read (deleted, no access)."""
        if automation_id not in self._names and self._reachable:
            try:
                self.resolve(automation_id)
            except CliError as exc:
                # Names are a nicety: one unreachable service must not stall every row.
                self._reachable = exc.exit_code != ExitCode.UNAVAILABLE
        return self._names.get(automation_id, automation_id)


def _styled(label: str) -> Text:
    return Text(label, style=STYLE.get(label, ""))


def exit_code_for(run: Any) -> ExitCode:
    """0 when the run succeeded, 1 for any other terminal state."""
    return ExitCode.OK if run.status == executor_pb2.RUN_STATUS_SUCCEEDED else ExitCode.RUN_FAILED


def _error_text(error: Any) -> str:
    if not error.type and not error.message:
        return ""
    return f"{error.type}: {error.message}" if error.type else error.message


def show_run(out: Out, run: Any) -> None:
    """Run facts, then its steps."""
    status = enum_label(run, "status")
    pairs: list[tuple[str, Any]] = [
        ("Run", run.id),
        ("Automation", f"{run.automation_id} (version {run.automation_version})"),
        ("Status", _styled(status)),
        ("Trigger", run.trigger_type + (f" ({run.trigger_id})" if run.trigger_id else "")),
        ("Created", ts(run.create_time)),
        ("Duration", elapsed(run.start_time, run.finish_time)),
        ("Principal", run.principal or "-"),
    ]
    if run.retry_of_run_id:
        pairs.append(("Retry of", run.retry_of_run_id))
    if run.note:
        pairs.append(("Note", run.note))
    subject = run.cause.fields["subject"].string_value if "subject" in run.cause.fields else ""
    if subject:
        pairs.append(("Event", subject))
    if run.upstream_run_id:
        pairs.append(("Upstream run", run.upstream_run_id))
    if run.chain_depth:
        pairs.append(("Chain depth", run.chain_depth))
    if run.cost_usd:
        pairs.append(("LLM cost", f"${run.cost_usd:.4f}"))
    if _error_text(run.error):
        pairs.append(("Error", Text(_error_text(run.error), style="red")))
    out.fields(pairs)
    out.table(
        ["", "Step", "Action", "Status", "Attempts", "Duration", "Error"],
        (
            [
                MARK.get(enum_label(s, "status"), "?"),
                s.step_id + (" (on failure)" if s.phase == "on_failure" else ""),
                s.action,
                _styled(enum_label(s, "status")),
                s.attempts,
                elapsed(s.start_time, s.finish_time),
                _error_text(s.error),
            ]
            for s in run.steps
        ),
        title="Steps",
    )
    calls = [(s, c) for s in run.steps for c in s.tool_calls]
    if calls:
        out.table(
            ["Step", "#", "Tool", "Status", "Duration", "Error"],
            (
                [
                    s.step_id,
                    c.call_n,
                    c.name,
                    _styled(c.status),
                    f"{c.duration_ms}ms" if c.finish_time.seconds else "-",
                    _error_text(c.error),
                ]
                for s, c in calls
            ),
            title="Tool calls",
        )


class Progress:
    """Prints each step once per status change, then the outcome."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.seen: dict[str, str] = {}
        self.announced = False

    def step(self, step: Any) -> None:
        """Print a step unless it was printed with this status already."""
        status = enum_label(step, "status")
        key = f"{step.phase}:{step.step_id}"
        if self.seen.get(key) == status or status == "pending":
            return
        self.seen[key] = status
        line = Text(f"  {MARK.get(status, '?')} ", style=STYLE.get(status, ""))
        line += Text(step.step_id, style="bold") + Text(f"  {step.action}  ")
        line += _styled(status)
        if status not in ("running", "skipped"):
            attempts = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}"
            line += Text(f"  {attempts}, {elapsed(step.start_time, step.finish_time)}", style="dim")
        if step.phase == "on_failure":
            line += Text("  (on failure)", style="dim")
        self.out.print(line)
        for call in step.tool_calls:
            tool = Text(f"      tool {call.call_n} {call.name}  ", style="dim")
            tool += _styled(call.status)
            if _error_text(call.error):
                tool += Text(f"  {_error_text(call.error)}", style="red")
            self.out.print(tool)
        if _error_text(step.error):
            self.out.print(Text(f"      {_error_text(step.error)}", style="red"))

    def event(self, event: Any) -> None:
        """Render one WatchRunResponse."""
        run = event.run
        if not self.announced:
            self.announced = True
            self.out.print(
                Text("Run ", style="bold")
                + Text(run.id, style="bold cyan")
                + Text(f"  automation {run.automation_id} v{run.automation_version}, ")
                + _styled(enum_label(run, "status"))
            )
        if event.HasField("step"):
            self.step(event.step)
        else:
            for step in run.steps:
                self.step(step)

    def finish(self, run: Any) -> None:
        """The outcome line."""
        status = enum_label(run, "status")
        line = Text("Run ", style="bold") + Text(status, style=f"bold {STYLE.get(status, '')}")
        line += Text(f" in {elapsed(run.start_time, run.finish_time)}", style="dim")
        self.out.print(line)
        if _error_text(run.error):
            self.out.print(Text(f"  {_error_text(run.error)}", style="red"))


def watch(api: Api, out: Out, run_id: str) -> ExitCode:
    """Follow a run until it is terminal; the exit code says how it ended."""
    progress = Progress(out)
    run: Any = None
    last: Any = None
    for _ in range(20):
        # Read the stream to its end: an event's run snapshot can already be terminal
        # while the step events before the terminal one are still to come.
        for event in api.stream("executor", "WatchRun", ES.WatchRunRequest(run_id=run_id)):
            last = event
            if out.json_mode:
                out.json(event, compact=True)
            else:
                progress.event(event)
        # Ended: the run is terminal, or the stream broke (e.g. a restart) and we go on.
        run = api.call("executor", "GetRun", ES.GetRunRequest(run_id=run_id)).run
        if run.status in TERMINAL:
            break
    if run is None or run.status not in TERMINAL:
        raise CliError(f"run {run_id} did not finish while watched", ExitCode.UNAVAILABLE)
    if out.json_mode:
        if last is None or last.run != run:
            # The record as stored is the last line, whatever the stream showed.
            out.json(ES.WatchRunResponse(run=run), compact=True)
    else:
        for step in run.steps:
            progress.step(step)
        progress.finish(run)
    return exit_code_for(run)


def start_run(
    automation: str,
    inputs: list[str] | None,
    inputs_json: str | None,
    version: int,
    follow: bool,
    request_id: str | None,
    json_out: bool,
) -> None:
    """StartRun, then optionally watch it (the command's exit code follows the run)."""
    struct = parse_inputs(inputs or [], inputs_json)
    with session(json_out) as (api, out):
        response = api.call(
            "executor",
            "StartRun",
            ES.StartRunRequest(
                request_id=request_id or new_request_id(),
                automation_id=automation,
                version=version,
                inputs=struct,
            ),
        )
        if not follow:
            if json_out:
                out.json(response)
            else:
                out.print(
                    Text("Started run ", style="bold")
                    + Text(response.run.id, style="bold cyan")
                    + Text(f"  (watch it: autom runs watch {response.run.id})", style="dim")
                )
            return
        code = watch(api, out, response.run.id)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def run_command(
    automation: Annotated[str, typer.Argument(help="Automation id or name.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as key=value (JSON values allowed)."),
    ] = None,
    inputs_json: Annotated[
        str | None, typer.Option("--inputs", help="All inputs as one JSON object.")
    ] = None,
    version: Annotated[int, typer.Option(help="Version to run (default: latest).")] = 0,
    follow: WatchOption = False,
    request_id: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Run an automation now; with --watch, follow it and exit 0 only if it succeeded."""
    start_run(automation, inputs, inputs_json, version, follow, request_id, json_out)


@app.command("list")
@guarded
def list_(
    automation: Annotated[
        str | None, typer.Option("--automation", "-a", help="Only runs of this automation.")
    ] = None,
    status: Annotated[str | None, typer.Option(help=", ".join(RUN_STATUSES))] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """List runs, newest first."""
    if status is not None and status.lower() not in RUN_STATUSES:
        raise CliError(f"--status must be one of {', '.join(RUN_STATUSES)}", ExitCode.INVALID)
    with session(json_out) as (api, out):
        names = AutomationNames(api)
        if automation:
            automation = names.resolve(automation)
        runs: list[Any] = []
        token = ""
        while True:
            page = api.call(
                "executor",
                "ListRuns",
                ES.ListRunsRequest(
                    automation_id=automation or "",
                    status=f"RUN_STATUS_{status.upper()}" if status else None,
                    page_size=min(limit - len(runs), 500),
                    page_token=token,
                ),
            )
            runs += list(page.runs)
            token = page.next_page_token
            if not token or len(runs) >= limit:
                break
        if json_out:
            out.json(ES.ListRunsResponse(runs=runs[:limit], next_page_token=token))
            return
        out.table(
            ["Run", "Automation", "Status", "Trigger", "Started", "Duration"],
            (
                [
                    r.id,
                    names.name(r.automation_id),
                    _styled(enum_label(r, "status")),
                    r.trigger_type,
                    ts(r.start_time if r.start_time.seconds else r.create_time),
                    elapsed(r.start_time, r.finish_time),
                ]
                for r in runs[:limit]
            ),
        )


@app.command("get")
@guarded
def get(run_id: RunIdArgument, json_out: JsonOption = False) -> None:
    """Show a run with its steps."""
    with session(json_out) as (api, out):
        response = api.call("executor", "GetRun", ES.GetRunRequest(run_id=run_id))
        if json_out:
            out.json(response)
        else:
            show_run(out, response.run)


@app.command("cancel")
@guarded
def cancel(
    run_id: RunIdArgument,
    reason: Annotated[str, typer.Option(help="Why, for people.")] = "",
    json_out: JsonOption = False,
) -> None:
    """Cancel a run; its current step stops promptly."""
    with session(json_out) as (api, out):
        response = api.call(
            "executor",
            "CancelRun",
            ES.CancelRunRequest(request_id=new_request_id(), run_id=run_id, reason=reason),
        )
        if json_out:
            out.json(response)
        else:
            out.print(
                Text(f"Run {run_id}: ", style="bold") + _styled(enum_label(response.run, "status"))
            )


@app.command("retry")
@guarded
def retry(run_id: RunIdArgument, follow: WatchOption = False, json_out: JsonOption = False) -> None:
    """Start a new run from the failed step of a finished run."""
    with session(json_out) as (api, out):
        response = api.call(
            "executor",
            "RetryRun",
            ES.RetryRunRequest(request_id=new_request_id(), run_id=run_id),
        )
        if not follow:
            if json_out:
                out.json(response)
            else:
                out.print(Text("Started retry run ", style="bold") + Text(response.run.id, "cyan"))
            return
        code = watch(api, out, response.run.id)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


@app.command("watch")
@guarded
def watch_command(run_id: RunIdArgument, json_out: JsonOption = False) -> None:
    """Follow a run until it ends; exit 0 only if it succeeded."""
    with session(json_out) as (api, out):
        code = watch(api, out, run_id)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))
