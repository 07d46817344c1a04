"""`autom audit`: the workspace's append-only audit log (owners only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autom.api.definitions.v1 import audit_pb2
from autom.cli.common import JsonOption, guarded, session
from autom.cli.output import ts
from autom.cli.schedules import _after as iso_time

TARGET_TYPES = (
    "automation",
    "run",
    "draft",
    "member",
    "token",
    "secret",
    "mcp_server",
    "schedule",
    "workspace",
)


def _versions(event: Any) -> str:
    if not event.version_before and not event.version_after:
        return ""
    return f"{event.version_before or '-'} → {event.version_after or '-'}"


@guarded
def audit_command(
    actor: Annotated[str | None, typer.Option(help="Only calls by this principal.")] = None,
    target_type: Annotated[
        str | None, typer.Option("--target-type", help=", ".join(TARGET_TYPES))
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only this resource id (or name).")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. automation.update.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this ISO 8601 time on, e.g. 2026-12-01T00:00:00Z.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this ISO 8601 time.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """Who changed what and when, newest first: every mutating call of every service."""
    request = audit_pb2.ListAuditEventsRequest(
        actor=actor or "",
        target_type=target_type or "",
        target_id=target or "",
        action=action or "",
        start_time=iso_time(since, "--since"),
        end_time=iso_time(until, "--until"),
    )
    with session(json_out) as (api, out):
        events: list[Any] = []
        token = ""
        while True:
            request.page_size = min(limit - len(events), 500)
            request.page_token = token
            page = api.call("definitions", "ListAuditEvents", request)
            events += list(page.events)
            token = page.next_page_token
            if not token or len(events) >= limit:
                break
        if json_out:
            out.json(
                audit_pb2.ListAuditEventsResponse(events=events[:limit], next_page_token=token)
            )
            return
        out.table(
            ["Time", "Actor", "Token", "Action", "Target", "Versions", "Request"],
            (
                [
                    ts(e.occur_time),
                    e.actor,
                    e.token_id,
                    e.action,
                    f"{e.target_type} {e.target_id}",
                    _versions(e),
                    e.request_id,
                ]
                for e in events[:limit]
            ),
        )
