"""`autom automations ...`: create, inspect and change automation definitions."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from google.protobuf import json_format
from rich.text import Text

from autom.api.definitions.v1 import definitions_service_pb2
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.errors import CliError, ExitCode
from autom.cli.files import load_definition
from autom.cli.output import Out, enum_label, integral, ts

DS = definitions_service_pb2
app = typer.Typer(help="Create, inspect and change automations.", no_args_is_help=True)

FileOption = Annotated[
    str, typer.Option("--file", "-f", help="Definition file (YAML or JSON; `-` for stdin).")
]
IdArgument = Annotated[str, typer.Argument(help="Automation id or name.")]
STATUSES = ("active", "paused", "archived")
STATUS_STYLE = {"active": "green", "paused": "yellow", "archived": "dim"}


def _status(automation: Any) -> Text:
    label = enum_label(automation, "status")
    return Text(label, style=STATUS_STYLE.get(label, ""))


def _triggers(definition: Any) -> str:
    parts = []
    for trigger in definition.triggers:
        config = json_format.MessageToDict(trigger.config)
        if trigger.type == "schedule" and "cron" in config:
            parts.append(f"{config['cron']} ({config.get('timezone', 'UTC')})")
        else:
            parts.append(trigger.type)
    return ", ".join(parts) or "manual only"


def show_automation(out: Out, automation: Any) -> None:
    """Key facts, then the plan."""
    d = automation.definition
    out.fields(
        [
            ("Name", automation.name),
            ("Id", automation.id),
            ("Status", _status(automation)),
            ("Version", automation.version),
            ("Triggers", _triggers(d)),
            ("Description", d.description or "-"),
            ("Created", f"{ts(automation.create_time)} by {automation.created_by or '-'}"),
            ("Updated", ts(automation.update_time)),
        ]
        + ([("Pause note", automation.pause_note)] if automation.pause_note else [])
    )
    out.table(
        ["Step", "Action", "When"],
        ([s.id, s.action, s.when or ""] for s in d.plan),
        title="Plan",
    )
    if d.execution.on_failure:
        out.table(
            ["Step", "Action"],
            ([s.id, s.action] for s in d.execution.on_failure),
            title="On failure",
        )


def show_webhooks(out: Out, response: Any) -> None:
    """Each webhook trigger's URL path (on the gateway); only editors and owners get them."""
    for hook in getattr(response, "webhooks", ()):
        out.print(
            Text(f"Webhook {hook.trigger_id}: ", style="bold")
            + Text(f"POST <gateway>{hook.path}", style="cyan")
        )


def _done(out: Out, json_out: bool, response: Any, verb: str) -> None:
    if json_out:
        out.json(response)
        return
    automation = response.automation
    out.print(
        Text(f"{verb} ", style="bold")
        + Text(automation.name, style="bold cyan")
        + Text(f"  (id {automation.id}, version {automation.version}, ")
        + _status(automation)
        + Text(")")
    )
    show_webhooks(out, response)


@app.command("create")
@guarded
def create(
    file: FileOption,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    request_id: Annotated[
        str | None, typer.Option(help="Idempotency key (a retry with it returns the first result).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create an automation from a definition file."""
    definition = load_definition(file)
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "CreateAutomation",
            DS.CreateAutomationRequest(
                request_id=request_id or new_request_id(), definition=definition, paused=paused
            ),
        )
        _done(out, json_out, response, "Created")


@app.command("validate")
@guarded
def validate(file: FileOption, json_out: JsonOption = False) -> None:
    """Check a definition file without saving it (exit 2 when invalid)."""
    definition = load_definition(file)
    with session(json_out) as (api, out):
        response = api.call(
            "definitions", "ValidateDefinition", DS.ValidateDefinitionRequest(definition=definition)
        )
        if json_out:
            out.json(response)
            if not response.valid:
                raise typer.Exit(int(ExitCode.INVALID))
            return
        if response.valid:
            out.print(Text("Valid: ", style="bold green") + Text(f"{file} can be created."))
            return
        raise CliError(
            f"{'the definition on stdin' if file == '-' else file} is not a valid definition",
            ExitCode.INVALID,
            [(v.field, v.description) for v in response.violations],
        )


@app.command("get")
@guarded
def get(
    automation: IdArgument,
    version: Annotated[int, typer.Option(help="A past version (default: latest).")] = 0,
    definition_only: Annotated[
        bool,
        typer.Option("--definition", help="Print only the definition, as YAML for `update -f`."),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Show an automation."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "GetAutomation",
            DS.GetAutomationRequest(automation_id=automation, version=version),
        )
        if definition_only:
            data = integral(
                json_format.MessageToDict(
                    response.automation.definition, preserving_proto_field_name=True
                )
            )
            if json_out:
                out.json(data)
            else:
                out.console.file.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
            return
        if json_out:
            out.json(response)
        else:
            show_automation(out, response.automation)
            show_webhooks(out, response)


@app.command("rotate-webhook")
@guarded
def rotate_webhook(
    automation: IdArgument,
    trigger: Annotated[
        str, typer.Option(help="The webhook trigger's id (default: the first, `webhook_0`).")
    ] = "webhook_0",
    json_out: JsonOption = False,
) -> None:
    """Give a webhook trigger a new URL; the old one stops working at once."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "RotateWebhook",
            DS.RotateWebhookRequest(automation_id=automation, trigger_id=trigger),
        )
        if json_out:
            out.json(response)
            return
        out.print(
            Text("Rotated ", style="bold")
            + Text(f"{automation} {trigger}", style="bold cyan")
            + Text(f": POST <gateway>{response.webhook.path}")
        )


@app.command("list")
@guarded
def list_(
    status: Annotated[
        str | None, typer.Option(help="active, paused or archived.", case_sensitive=False)
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only automations with this tag.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only names starting with this.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    json_out: JsonOption = False,
) -> None:
    """List automations of your workspace."""
    if status is not None and status.lower() not in STATUSES:
        raise CliError(f"--status must be one of {', '.join(STATUSES)}", ExitCode.INVALID)
    with session(json_out) as (api, out):
        items: list[Any] = []
        token = ""
        while True:
            page = api.call(
                "definitions",
                "ListAutomations",
                DS.ListAutomationsRequest(
                    page_size=min(limit - len(items), 500),
                    page_token=token,
                    status=f"AUTOMATION_STATUS_{status.upper()}" if status else None,
                    tag=tag or "",
                    name_prefix=prefix or "",
                ),
            )
            items += list(page.automations)
            token = page.next_page_token
            if not token or len(items) >= limit:
                break
        if json_out:
            out.json(DS.ListAutomationsResponse(automations=items[:limit], next_page_token=token))
            return
        out.table(
            ["Name", "Status", "Version", "Triggers", "Steps", "Id"],
            (
                [
                    a.name,
                    _status(a),
                    a.version,
                    _triggers(a.definition),
                    len(a.definition.plan),
                    a.id,
                ]
                for a in items[:limit]
            ),
        )


@app.command("versions")
@guarded
def versions(
    automation: IdArgument,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 20,
    json_out: JsonOption = False,
) -> None:
    """List an automation's immutable versions, newest first."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "ListAutomationVersions",
            DS.ListAutomationVersionsRequest(automation_id=automation, page_size=min(limit, 500)),
        )
        if json_out:
            out.json(response)
            return
        out.table(
            ["Version", "Written", "By", "Steps", "Triggers"],
            (
                [
                    v.version,
                    ts(v.create_time),
                    v.created_by or "-",
                    len(v.definition.plan),
                    _triggers(v.definition),
                ]
                for v in response.versions[:limit]
            ),
        )


@app.command("update")
@guarded
def update(
    automation: IdArgument,
    file: FileOption,
    version: Annotated[
        int, typer.Option(help="The version you edited (default: the current one).")
    ] = 0,
    json_out: JsonOption = False,
) -> None:
    """Replace an automation's definition (a new version)."""
    definition = load_definition(file)
    with session(json_out) as (api, out):
        if not version:
            current = api.call(
                "definitions", "GetAutomation", DS.GetAutomationRequest(automation_id=automation)
            )
            version = current.automation.version
        response = api.call(
            "definitions",
            "UpdateAutomation",
            DS.UpdateAutomationRequest(
                request_id=new_request_id(),
                automation_id=automation,
                version=version,
                definition=definition,
            ),
        )
        _done(out, json_out, response, "Updated")


def _lifecycle(method: str, verb: str, automation: str, json_out: bool, **extra: Any) -> None:
    request_cls = getattr(DS, f"{method}Request")
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            method,
            request_cls(request_id=new_request_id(), automation_id=automation, **extra),
        )
        _done(out, json_out, response, verb)


@app.command("pause")
@guarded
def pause(
    automation: IdArgument,
    note: Annotated[str, typer.Option(help="Why, for people.")] = "",
    json_out: JsonOption = False,
) -> None:
    """Pause an automation: its triggers stop firing."""
    _lifecycle("PauseAutomation", "Paused", automation, json_out, note=note)


@app.command("resume")
@guarded
def resume(automation: IdArgument, json_out: JsonOption = False) -> None:
    """Resume a paused automation."""
    _lifecycle("ResumeAutomation", "Resumed", automation, json_out)


@app.command("archive")
@guarded
def archive(automation: IdArgument, json_out: JsonOption = False) -> None:
    """Archive an automation: read-only, never fires again."""
    _lifecycle("ArchiveAutomation", "Archived", automation, json_out)


@app.command("delete")
@guarded
def delete(
    automation: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Delete an automation and its versions."""
    if not yes and not typer.confirm(f"Delete automation {automation!r} and all its versions?"):
        raise CliError("not deleted", ExitCode.INVALID)
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "DeleteAutomation",
            DS.DeleteAutomationRequest(request_id=new_request_id(), automation_id=automation),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text("Deleted ", style="bold") + Text(automation, style="bold cyan"))
