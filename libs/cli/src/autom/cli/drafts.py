"""`autom draft "<intent>"`: from one sentence to an automation you approve."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.syntax import Syntax
from rich.text import Text

from autom.api.drafter.v1 import drafter_pb2, drafter_service_pb2
from autom.cli.client import Api
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.errors import CliError, ExitCode, usage
from autom.cli.output import Out, enum_label, ts

RS = drafter_service_pb2
D = drafter_pb2
# Outcomes that produced nothing to approve: the command exits 1.
UNUSABLE = (D.DRAFT_STATUS_FAILED, D.DRAFT_STATUS_INVALID, D.DRAFT_STATUS_OUT_OF_SCOPE)


def local_timezone() -> str:
    """The machine's IANA zone ($TZ or /etc/localtime), else UTC."""
    tz = os.environ.get("TZ", "").strip().lstrip(":")
    if tz and "/" in tz:
        return tz
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    _, found, name = target.partition("/zoneinfo/")
    return name if found and name else "UTC"


def show_draft(out: Out, draft: Any) -> None:
    """The current revision: what it will do, or what is missing."""
    status = enum_label(draft, "status")
    out.print(
        Text("Draft ", style="bold")
        + Text(draft.id, style="bold cyan")
        + Text(f"  revision {len(draft.revisions)}, ")
        + Text(status, style="green" if status in ("pending", "approved") else "yellow")
    )
    if not draft.revisions:
        return
    revision = draft.revisions[-1]
    if revision.message:
        out.print(Text(revision.message, style="italic"))
    preview = revision.preview
    if revision.definition.name:
        d = revision.definition
        out.fields([("Name", d.name), ("Description", d.description or "-")])
    for trigger in preview.triggers:
        # In the zone the user drafted in, like the description beside them.
        times = ", ".join(ts(t, draft.timezone) for t in trigger.next_fire_times[:3])
        out.print(Text("  When: ", style="bold") + Text(f"{trigger.description}  (next: {times})"))
    for warning in preview.warnings:
        out.print(Text("  ! ", style="bold yellow") + Text(warning))
    if preview.steps:
        out.table(["Step", "Action", "When"], ([s.id, s.action, s.when] for s in preview.steps))
    for change in preview.changes:
        out.print(Text(f"  • {change}"))
    if preview.json:
        out.print(Syntax(preview.json, "json", theme="ansi_dark", word_wrap=True))
    for v in revision.violations:
        out.print(Text(f"  {v.field}: ", style="bold red") + Text(v.description))
    for question in revision.questions:
        out.print(Text("  ? ", style="bold yellow") + Text(question))
    if revision.error.type or revision.error.message:
        out.print(Text(f"  {revision.error.type}: {revision.error.message}", style="red"))
    usage_ = revision.usage
    if usage_.calls:
        out.print(
            Text(
                f"  {usage_.calls} model call(s), {usage_.prompt_tokens + usage_.completion_tokens}"
                f" tokens, ${usage_.cost_usd:.4f}",
                style="dim",
            )
        )


def _refine(api: Api, draft: Any, instruction: str) -> Any:
    return api.call(
        "drafter",
        "RefineDraft",
        RS.RefineDraftRequest(
            request_id=new_request_id(), draft_id=draft.id, instruction=instruction
        ),
        timeout=max(api.config.timeout_seconds, 180),
    ).draft


def _approve(api: Api, out: Out, draft: Any, json_out: bool) -> None:
    response = api.call(
        "drafter",
        "ApproveDraft",
        RS.ApproveDraftRequest(
            request_id=new_request_id(),
            draft_id=draft.id,
            expected_revision=len(draft.revisions),
        ),
    )
    if json_out:
        out.json(response)
    else:
        out.print(
            Text("Approved: ", style="bold green")
            + Text(f"automation {response.automation_id} (version {response.automation_version})")
        )


def _reject(api: Api, out: Out, draft: Any, reason: str, json_out: bool) -> None:
    response = api.call(
        "drafter",
        "RejectDraft",
        RS.RejectDraftRequest(request_id=new_request_id(), draft_id=draft.id, reason=reason),
    )
    if json_out:
        out.json(response)
    else:
        out.print(Text("Rejected ", style="bold") + Text(draft.id, style="cyan"))


def _interactive(api: Api, out: Out, draft: Any) -> None:
    while True:
        status = draft.status
        if status == D.DRAFT_STATUS_NEEDS_CLARIFICATION:
            answer = typer.prompt("Your answers (empty to stop)", default="", show_default=False)
            if not answer.strip():
                return
            draft = _refine(api, draft, answer)
            show_draft(out, draft)
            continue
        choices = (
            "[a]pprove, [r]efine, re[j]ect, [q]uit"
            if status == D.DRAFT_STATUS_PENDING
            else ("[r]efine, re[j]ect, [q]uit")
        )
        choice = typer.prompt(choices, default="q").strip().lower()[:1]
        if choice == "a" and status == D.DRAFT_STATUS_PENDING:
            _approve(api, out, draft, False)
            return
        if choice == "r":
            draft = _refine(api, draft, typer.prompt("What should change?"))
            show_draft(out, draft)
        elif choice == "j":
            _reject(api, out, draft, typer.prompt("Why (optional)", default=""), False)
            return
        elif choice == "q":
            out.print(Text(f"Left draft {draft.id} as it is.", style="dim"))
            return


@guarded
def draft_command(
    intent: Annotated[
        str | None, typer.Argument(help="What you want, in your words.", show_default=False)
    ] = None,
    draft_id: Annotated[
        str | None, typer.Option("--draft", help="Continue an existing draft instead.")
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="Your IANA time zone, used when the intent names none (default: local)."
        ),
    ] = None,
    automation: Annotated[
        str | None, typer.Option("--automation", help="Draft a change to this automation.")
    ] = None,
    refine: Annotated[
        list[str] | None,
        typer.Option("--refine", help="Refine with this instruction (repeatable)."),
    ] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the result.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the result.")] = False,
    reason: Annotated[str, typer.Option(help="Why, with --reject.")] = "",
    interactive: Annotated[
        bool | None,
        typer.Option(
            "--interactive/--no-interactive",
            help="Ask what to do next (default: when stdin is a terminal).",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Draft an automation from a sentence, then approve, refine or reject it."""
    if approve and reject:
        raise usage("use --approve or --reject, not both")
    if bool(intent) == bool(draft_id):
        raise usage('give an intent ("every Monday at 9 ...") or --draft <id>, not both')
    with session(json_out) as (api, out):
        if draft_id:
            draft = api.call("drafter", "GetDraft", RS.GetDraftRequest(draft_id=draft_id)).draft
        else:
            draft = api.call(
                "drafter",
                "DraftAutomation",
                RS.DraftAutomationRequest(
                    request_id=new_request_id(),
                    intent=intent or "",
                    timezone=tz or local_timezone(),
                    automation_id=automation or "",
                ),
                timeout=max(api.config.timeout_seconds, 180),
            ).draft
        for instruction in refine or []:
            draft = _refine(api, draft, instruction)
        if json_out and not (approve or reject):
            out.json(draft)
        elif not json_out:
            show_draft(out, draft)
        if approve:
            if draft.status != D.DRAFT_STATUS_PENDING:
                raise CliError(
                    f"draft {draft.id} is {enum_label(draft, 'status')}, not pending: "
                    "refine it first",
                    ExitCode.INVALID,
                    [(v.field, v.description) for v in draft.revisions[-1].violations]
                    if draft.revisions
                    else [],
                )
            _approve(api, out, draft, json_out)
        elif reject:
            _reject(api, out, draft, reason, json_out)
        elif (sys.stdin.isatty() if interactive is None else interactive) and not json_out:
            _interactive(api, out, draft)
        elif draft.status == D.DRAFT_STATUS_PENDING and not json_out:
            out.print(Text(f"Approve with: autom draft --draft {draft.id} --approve", style="dim"))
        if draft.status in UNUSABLE:
            raise typer.Exit(int(ExitCode.RUN_FAILED))


app = typer.Typer(help="List and show drafts (start one with `autom draft`).", no_args_is_help=True)
DRAFT_STATUSES = [
    n.removeprefix("DRAFT_STATUS_").lower()
    for n in D.DraftStatus.DESCRIPTOR.values_by_name
    if n != "DRAFT_STATUS_UNSPECIFIED"
]


@app.command("list")
@guarded
def list_drafts(
    status: Annotated[str | None, typer.Option(help=", ".join(DRAFT_STATUSES))] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """List the workspace's drafts, newest first."""
    if status is not None and status.lower() not in DRAFT_STATUSES:
        raise usage(f"--status must be one of {', '.join(DRAFT_STATUSES)}")
    with session(json_out) as (api, out):
        drafts: list[Any] = []
        token = ""
        while True:
            page = api.call(
                "drafter",
                "ListDrafts",
                RS.ListDraftsRequest(
                    status=f"DRAFT_STATUS_{status.upper()}" if status else None,
                    page_size=min(limit - len(drafts), 100),
                    page_token=token,
                ),
            )
            drafts += list(page.drafts)
            token = page.next_page_token
            if not token or len(drafts) >= limit:
                break
        if json_out:
            out.json(RS.ListDraftsResponse(drafts=drafts[:limit], next_page_token=token))
            return
        out.table(
            ["Draft", "Status", "Intent", "Revisions", "Created"],
            (
                [
                    d.id,
                    enum_label(d, "status"),
                    d.intent if len(d.intent) <= 60 else d.intent[:57] + "...",
                    len(d.revisions),
                    ts(d.create_time),
                ]
                for d in drafts[:limit]
            ),
        )


@app.command("get")
@guarded
def get_draft(
    draft_id: Annotated[str, typer.Argument(help="Draft id.")], json_out: JsonOption = False
) -> None:
    """Show a draft's current revision (continue it with `autom draft --draft <id>`)."""
    with session(json_out) as (api, out):
        draft = api.call("drafter", "GetDraft", RS.GetDraftRequest(draft_id=draft_id)).draft
        if json_out:
            out.json(draft)
        else:
            show_draft(out, draft)
