"""The `autom` command tree."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from autom.api.definitions.v1 import definitions_service_pb2
from autom.cli import audit, automations, drafts, runs, schedules, workspace
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.config import CliConfig
from autom.cli.errors import CliError, usage
from autom.cli.output import enum_label, set_output_format, split_output_option, ts

DS = definitions_service_pb2


class OutputGroup(TyperGroup):
    """The root command: takes `-o/--output` from anywhere on the line, as kubectl does."""

    # `Any`: typer vendors click privately, so its Context type has no public name.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            found, rest = split_output_option(args)
        except CliError as exc:
            raise typer.BadParameter(exc.message, param_hint="-o/--output") from None
        set_output_format(found)
        return super().parse_args(ctx, rest)


app = typer.Typer(
    cls=OutputGroup,
    name="autom",
    help="Autom from the terminal: automations, runs, schedules, drafts, secrets and tokens.",
    no_args_is_help=True,
    # Never print locals on a crash: they can hold the bearer token.
    pretty_exceptions_enable=False,
)
tokens = typer.Typer(help="Issue, list and revoke API tokens (owners only).", no_args_is_help=True)
app.add_typer(automations.app, name="automations")
app.add_typer(runs.app, name="runs")
app.add_typer(schedules.app, name="schedules")
app.add_typer(tokens, name="tokens")
app.add_typer(workspace.secrets, name="secrets")
app.add_typer(workspace.members, name="members")
app.add_typer(workspace.mcp, name="mcp")
app.add_typer(workspace.workspaces, name="workspaces")
# `autom workspace usage` reads naturally too.
app.add_typer(workspace.workspaces, name="workspace", hidden=True)
app.add_typer(drafts.app, name="drafts")
app.command("run")(guarded(runs.run_command))
app.command("draft")(drafts.draft_command)
app.command("audit")(audit.audit_command)

ROLES = workspace.ROLES


def _version(value: bool) -> None:
    if value:
        typer.echo(f"autom {importlib.metadata.version('autom-cli')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="table, json or yaml for every command that reads; may stand anywhere.",
        ),
    ] = "table",
) -> None:
    """Autom from the terminal: automations, runs, schedules, drafts, secrets and tokens."""


_TTL = re.compile(r"([0-9]+)([smhdwy]?)")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_ttl(value: str) -> int:
    """`90d`, `12h`, `3600` -> seconds."""
    m = _TTL.fullmatch(value.strip())
    if not m or int(m.group(1)) <= 0:
        raise usage(f"--ttl {value!r}: use e.g. 3600, 12h, 30d or 1y")
    return int(m.group(1)) * _TTL_UNITS[m.group(2)]


@app.command("login")
@guarded
def login(
    token: Annotated[
        str | None, typer.Option(help="The bearer token (asked for when omitted).")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Check the token with the server first.")] = True,
    json_out: JsonOption = False,
) -> None:
    """Store a token in the config file ($AUTOM_CONFIG or ~/.config/autom/config.json)."""
    if token is None:
        token = typer.prompt("Token", hide_input=True)
    token = token.strip().removeprefix("Bearer ").strip()
    if not token:
        raise usage("the token is empty")
    config = CliConfig.load()
    with session(json_out) as (api, out):
        api.config = CliConfig(
            path=config.path,
            token=token,
            token_source="--token",
            addresses=config.addresses,
            timeout_seconds=config.timeout_seconds,
        )
        who = api.call("definitions", "WhoAmI", DS.WhoAmIRequest()) if verify else None
        config.save_token(token)
        if json_out:
            out.json(who if who is not None else {"saved": str(config.path)})
            return
        if who is not None:
            out.print(
                Text("Logged in as ", style="bold")
                + Text(who.principal, style="bold cyan")
                + Text(f" (workspace {who.workspace_id}, role {enum_label(who, 'role')})")
            )
        out.print(Text(f"Token saved to {config.path}", style="dim"))


@app.command("whoami")
@guarded
def whoami(json_out: JsonOption = False) -> None:
    """Show who your token says you are."""
    with session(json_out) as (api, out):
        who = api.call("definitions", "WhoAmI", DS.WhoAmIRequest())
        if json_out:
            out.json(who)
            return
        out.fields(
            [
                ("Principal", who.principal),
                ("Workspace", who.workspace_id),
                ("Role", enum_label(who, "role")),
                ("Token", f"{who.token_id} (from {api.config.token_source or '-'})"),
            ]
        )


@tokens.command("create")
@guarded
def tokens_create(
    principal: Annotated[str, typer.Option(help="Who the token names, e.g. user:bob.")],
    role: Annotated[str, typer.Option(help="owner, editor or viewer.")] = "viewer",
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 30d, 12h, 1y.")] = "30d",
    json_out: JsonOption = False,
) -> None:
    """Issue a token; its secret is shown only now."""
    if role.lower() not in ROLES:
        raise usage(f"--role must be one of {', '.join(ROLES)}")
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "CreateApiToken",
            DS.CreateApiTokenRequest(
                request_id=new_request_id(),
                principal=principal,
                role=f"ROLE_{role.upper()}",
                name=name,
                ttl_seconds=parse_ttl(ttl),
            ),
        )
        if json_out:
            out.json(response)
            return
        t = response.token
        out.fields(
            [
                ("Token id", t.id),
                ("Principal", t.principal),
                ("Role", enum_label(t, "role")),
                ("Expires", ts(t.expire_time)),
            ]
        )
        out.print(Text("Secret (shown once):", style="bold yellow"))
        out.console.file.write(response.secret + "\n")


@tokens.command("list")
@guarded
def tokens_list(
    include_inactive: Annotated[
        bool, typer.Option("--all", help="Include revoked and expired tokens.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """List the tokens of your workspace."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "ListApiTokens",
            DS.ListApiTokensRequest(include_inactive=include_inactive),
        )
        if json_out:
            out.json(response)
            return
        out.table(
            ["Id", "Name", "Principal", "Role", "Created", "Expires", "Revoked"],
            (
                [
                    t.id,
                    t.name,
                    t.principal,
                    enum_label(t, "role"),
                    ts(t.create_time),
                    ts(t.expire_time),
                    ts(t.revoke_time),
                ]
                for t in response.tokens
            ),
        )


@tokens.command("revoke")
@guarded
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token id.")],
    json_out: JsonOption = False,
) -> None:
    """Revoke a token; every service stops accepting it."""
    with session(json_out) as (api, out):
        response = api.call(
            "definitions",
            "RevokeApiToken",
            DS.RevokeApiTokenRequest(request_id=new_request_id(), token_id=token_id),
        )
        if json_out:
            out.json(response)
        else:
            out.print(Text("Revoked ", style="bold") + Text(response.token.id, style="cyan"))
