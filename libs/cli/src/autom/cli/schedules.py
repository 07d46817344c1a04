"""`autom schedules ...`: what fires when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from google.protobuf import timestamp_pb2
from rich.text import Text

from autom.api.scheduler.v1 import scheduler_service_pb2
from autom.cli.common import JsonOption, guarded, new_request_id, session
from autom.cli.errors import usage
from autom.cli.files import parse_inputs
from autom.cli.output import Out, enum_label, ts

SS = scheduler_service_pb2
app = typer.Typer(
    help="List, describe, preview, trigger and backfill schedules.", no_args_is_help=True
)


def _enabled(schedule: Any) -> Text:
    return Text("enabled", style="green") if schedule.enabled else Text("disabled", style="dim")


@app.command("list")
@guarded
def list_(
    automation: Annotated[
        str | None, typer.Option("--automation", "-a", help="Only schedules of this automation.")
    ] = None,
    enabled_only: Annotated[bool, typer.Option("--enabled", help="Only enabled ones.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    json_out: JsonOption = False,
) -> None:
    """List schedules with their next and last fire times."""
    with session(json_out) as (api, out):
        items: list[Any] = []
        token = ""
        while True:
            page = api.call(
                "scheduler",
                "ListSchedules",
                SS.ListSchedulesRequest(
                    automation_id=automation or "",
                    enabled_only=enabled_only,
                    page_size=min(limit - len(items), 500),
                    page_token=token,
                ),
            )
            items += list(page.schedules)
            token = page.next_page_token
            if not token or len(items) >= limit:
                break
        if json_out:
            out.json(SS.ListSchedulesResponse(schedules=items[:limit], next_page_token=token))
            return
        out.table(
            ["Schedule", "When", "State", "Next fire", "Last fire", "Fired"],
            (
                [
                    s.id,
                    s.description or f"{s.cron} ({s.timezone})",
                    _enabled(s),
                    ts(s.next_fire_time, s.timezone or None),
                    ts(s.last_fire_time, s.timezone or None),
                    s.fired_count,
                ]
                for s in items[:limit]
            ),
        )


@app.command("describe")
@guarded
def describe(
    schedule_id: Annotated[str, typer.Argument(help="Schedule id (`<automation>:<trigger>`).")],
    next_count: Annotated[int, typer.Option("--next", min=1, max=100)] = 5,
    recent: Annotated[int, typer.Option(min=0, max=100)] = 10,
    json_out: JsonOption = False,
) -> None:
    """Describe a schedule: upcoming fires, recent fires and counters."""
    with session(json_out) as (api, out):
        response = api.call(
            "scheduler",
            "DescribeSchedule",
            SS.DescribeScheduleRequest(
                schedule_id=schedule_id, next_count=next_count, recent_count=recent
            ),
        )
        if json_out:
            out.json(response)
            return
        s = response.schedule
        tz = s.timezone or None
        out.fields(
            [
                ("Schedule", s.id),
                ("When", s.description or s.cron),
                ("Cron", f"{s.cron}  ({s.timezone})"),
                ("State", _enabled(s)),
                (
                    "DST",
                    f"on_missing={s.on_missing or 'shift'}, on_repeated={s.on_repeated or 'first'}",
                ),
                ("Catch-up", f"{s.catchup or 'none'} within {s.catchup_window or '-'}"),
                (
                    "Counters",
                    f"{s.fired_count} fired, {s.missed_count} missed, {s.skipped_count} skipped",
                ),
            ]
        )
        out.table(["Next fires", "UTC"], ([ts(t, tz), ts(t)] for t in response.next_fire_times))
        out.table(
            ["Scheduled for", "Fired", "Kind", "Run", "Run status"],
            (
                [
                    ts(f.scheduled_for, tz),
                    ts(f.fired_time, tz),
                    enum_label(f, "kind"),
                    f.run_id or "-",
                    f.run_status or "-",
                ]
                for f in response.recent_fires
            ),
            title="Recent fires",
        )


def _after(value: str | None, option: str = "--after") -> timestamp_pb2.Timestamp | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise usage(f"{option} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise usage(f"{option} needs a UTC offset, e.g. 2025-03-30T00:00:00+01:00")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


ScheduleIdArgument = Annotated[str, typer.Argument(help="Schedule id (`<automation>:<trigger>`).")]


@app.command("trigger")
@guarded
def trigger(
    schedule_id: ScheduleIdArgument,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as key=value (JSON values allowed)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Fire a schedule now, as if its time had come (the run follows through the executor)."""
    with session(json_out) as (api, out):
        response = api.call(
            "scheduler",
            "TriggerNow",
            SS.TriggerNowRequest(
                request_id=new_request_id(),
                schedule_id=schedule_id,
                inputs=parse_inputs(inputs or []),
            ),
        )
        if json_out:
            out.json(response)
            return
        out.print(Text("Fired ", style="bold") + Text(response.fire.fire_id, style="cyan"))


@app.command("backfill")
@guarded
def backfill(
    schedule_id: ScheduleIdArgument,
    start: Annotated[str, typer.Option("--from", help="ISO 8601 with offset (inclusive).")],
    end: Annotated[str, typer.Option("--to", help="ISO 8601 with offset (exclusive).")],
    json_out: JsonOption = False,
) -> None:
    """Fire every instant the schedule would have fired in a past range (once each)."""
    with session(json_out) as (api, out):
        response = api.call(
            "scheduler",
            "Backfill",
            SS.BackfillRequest(
                request_id=new_request_id(),
                schedule_id=schedule_id,
                start_time=_after(start, "--from"),
                end_time=_after(end, "--to"),
            ),
        )
        if json_out:
            out.json(response)
            return
        out.print(
            Text(f"{response.fires_created} fires created", style="bold")
            + Text(f", {response.already_fired} had fired already", style="dim")
        )


@app.command("preview")
@guarded
def preview(
    cron: Annotated[str, typer.Argument(help='A cron spec, e.g. "0 9 * * 1-5" or @daily.')],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Europe/Zurich.")] = "UTC",
    on_missing: Annotated[
        str | None, typer.Option(help="DST gap policy: shift (default) or skip.")
    ] = None,
    on_repeated: Annotated[
        str | None, typer.Option(help="DST repeat policy: first (default), last or both.")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="How many fire times.")] = 5,
    after: Annotated[
        str | None, typer.Option(help="Start after this time (ISO 8601 with offset).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Preview a cron spec in a time zone: its English description and next fire times."""
    request = SS.PreviewScheduleRequest(
        cron=cron,
        timezone=tz,
        on_missing=on_missing or "",
        on_repeated=on_repeated or "",
        count=count,
    )
    stamp = _after(after)
    if stamp is not None:
        request.after.CopyFrom(stamp)
    with session(json_out) as (api, out):
        response = api.call("scheduler", "PreviewSchedule", request)
        if json_out:
            out.json(response)
            return
        render_preview(out, response.description, response.next_fire_times, tz)


def render_preview(out: Out, description: str, times: Any, tz: str) -> None:
    """The description, then local and UTC times."""
    out.print(Text(description, style="bold"))
    out.table([f"Local ({tz})", "UTC"], ([ts(t, tz), ts(t)] for t in times))
