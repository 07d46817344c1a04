"""`autom secrets`, `autom members`, `autom mcp` and `autom workspaces`: what an owner
administers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from autom.api.definitions.v1 import definitions_service_pb2
from autom.api.executor.v1 import executor_service_pb2
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.errors import usage
from autom.cli.output import enum_label, ts

DS = definitions_service_pb2
ES = executor_service_pb2
ROLES = ("owner", "editor", "viewer")

secrets = typer.Typer(
    help="Set, list and delete the workspace's secrets (values are write-only).",
    no_args_is_help=True,
)
members = typer.Typer(help="List, add, change and remove workspace members.", no_args_is_help=True)
workspaces = typer.Typer(
    help="Create workspaces; show a workspace's usage against its quotas.", no_args_is_help=True
)

mcp = typer.Typer(
    help="Register, list and remove the workspace's MCP servers (tools: mcp:<server>/<tool>).",
    no_args_is_help=True,
)


def _secret_value(from_file: Path | None) -> str:
    # Never from an argument: it would stay in the shell history and the process list.
    if from_file is not None:
        try:
            value = from_file.read_text()
        except OSError as exc:
            raise usage(f"Cannot read {from_file}: {exc.strerror}") from None
    elif sys.stdin.isatty():
        value = typer.prompt("Value", hide_input=True)
    else:
        value = sys.stdin.read()
    value = value.removesuffix("\n")
    if not value:
        raise usage("the secret value is empty")
    return value


@secrets.command("set")
@guarded
def secrets_set(
    name: Annotated[str, typer.Argument(help="Secret name, used as {{ secrets.NAME }}.")],
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the value from a file.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Set or replace a secret; the value comes from --from-file, a pipe or a hidden prompt."""
    value = _secret_value(from_file)
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "SetSecret",
            DS.SetSecretRequest(request_id=new_request_id(), name=name, value=value),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text("Secret ", style="bold") + Text(name, style="cyan") + Text(" set"))


@secrets.command("list")
@guarded
def secrets_list(json_out: JsonOption = False) -> None:
    """List secret names (never values)."""
    with session(json_out) as (api, out):
        response = api.call("definitions", "ListSecrets", DS.ListSecretsRequest())
        if json_out:
            out.json(response)
            return
        out.table(
            ["Name", "Created", "Updated"],
            ([s.name, ts(s.create_time), ts(s.update_time)] for s in response.secrets),
        )


@secrets.command("delete")
@guarded
def secrets_delete(
    name: Annotated[str, typer.Argument(help="Secret name.")], json_out: JsonOption = False
) -> None:
    """Delete a secret; runs that need it fail with a clear error."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "DeleteSecret",
            DS.DeleteSecretRequest(request_id=new_request_id(), name=name),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text("Secret ", style="bold") + Text(name, style="cyan") + Text(" deleted"))


@members.command("list")
@guarded
def members_list(json_out: JsonOption = False) -> None:
    """List the members of your workspace and their roles."""
    with session(json_out) as (api, out):
        response = api.call("definitions", "ListMembers", DS.ListMembersRequest())
        if json_out:
            out.json(response)
            return
        out.table(
            ["Principal", "Role"], ([m.principal, enum_label(m, "role")] for m in response.members)
        )


@members.command("set")
@guarded
def members_set(
    principal: Annotated[str, typer.Argument(help="Who, e.g. user:bob.")],
    role: Annotated[str, typer.Option(help="owner, editor or viewer.")],
    json_out: JsonOption = False,
) -> None:
    """Add a member or change their role."""
    if role.lower() not in ROLES:
        raise usage(f"--role must be one of {', '.join(ROLES)}")
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "SetMember",
            DS.SetMemberRequest(
                request_id=new_request_id(), principal=principal, role=f"ROLE_{role.upper()}"
            ),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text(principal, style="cyan") + Text(f" is now {role.lower()}"))


@members.command("remove")
@guarded
def members_remove(
    principal: Annotated[str, typer.Argument(help="Who, e.g. user:bob.")],
    json_out: JsonOption = False,
) -> None:
    """Remove a member from your workspace."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "RemoveMember",
            DS.RemoveMemberRequest(request_id=new_request_id(), principal=principal),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text("Removed ", style="bold") + Text(principal, style="cyan"))


@workspaces.command("create")
@guarded
def workspaces_create(
    name: Annotated[str, typer.Argument(help="The new workspace's name.")],
    json_out: JsonOption = False,
) -> None:
    """Create a workspace; its owner token is shown only now."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "CreateWorkspace",
            DS.CreateWorkspaceRequest(request_id=new_request_id(), name=name),
        )
        if json_out:
            out.json(response)
            return
        out.fields([("Workspace", response.workspace.id), ("Name", response.workspace.name)])
        if response.owner_token:
            out.print(Text("Owner token (shown once):", style="bold yellow"))
            out.console.file.write(response.owner_token + "\n")


def _amount(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


@workspaces.command("usage")
@guarded
def workspaces_usage(
    workspace: Annotated[
        str, typer.Option("--workspace", help="Another workspace (admins); default: yours.")
    ] = "",
    json_out: JsonOption = False,
) -> None:
    """Each quota of the workspace: its current value and its limit (0: no limit)."""
    with session(json_out) as (api, out):
        response = api.call(
            "executor",
            "GetWorkspaceUsage",
            ES.GetWorkspaceUsageRequest(workspace_id=workspace),
        )
        if json_out:
            out.json(response)
            return
        out.table(
            ["Quota", "Current", "Limit"],
            (
                [q.name, _amount(q.current), _amount(q.limit) if q.limit else "none"]
                for q in response.quotas
            ),
            title=f"Workspace {response.workspace_id}",
        )


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise usage(f"--header {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


@mcp.command("add")
@guarded
def mcp_add(
    name: Annotated[str, typer.Argument(help="Server name, used as mcp:<name>/<tool>.")],
    url: Annotated[str, typer.Argument(help="Streamable HTTP endpoint, e.g. https://host/mcp.")],
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="NAME=VALUE, repeatable; a value may hold {{ secrets.NAME }}.",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Register (or replace) an MCP server; its tools are listed at once."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "RegisterMcpServer",
            DS.RegisterMcpServerRequest(name=name, url=url, headers=_headers(header or [])),
        )
        if json_out:
            out.json(response)
            return
        out.print(
            Text("MCP server ", style="bold") + Text(name, style="cyan") + Text(" registered")
        )
        out.table(
            ["Tool", "Description"],
            ([f"mcp:{name}/{t.name}", t.description] for t in response.server.tools),
        )


@mcp.command("list")
@guarded
def mcp_list(json_out: JsonOption = False) -> None:
    """List the workspace's MCP servers (header names only, never values)."""
    with session(json_out) as (api, out):
        response = api.call("definitions", "ListMcpServers", DS.ListMcpServersRequest())
        if json_out:
            out.json(response)
            return
        out.table(
            ["Name", "URL", "Headers", "Updated"],
            (
                [s.name, s.url, ", ".join(s.header_names), ts(s.update_time)]
                for s in response.servers
            ),
        )


@mcp.command("rm")
@guarded
def mcp_rm(
    name: Annotated[str, typer.Argument(help="Server name.")], json_out: JsonOption = False
) -> None:
    """Remove an MCP server; steps that declare its tools fail until it is registered again."""
    with session(json_out) as (api, out):
        response = api.call("definitions", "DeleteMcpServer", DS.DeleteMcpServerRequest(name=name))
        if json_out:
            out.json(response)
        else:
            out.print(
                Text("MCP server ", style="bold") + Text(name, style="cyan") + Text(" removed")
            )
