"""English descriptions of schedules, worded by cron-descriptor."""

from __future__ import annotations

from cron_descriptor import ExpressionDescriptor, Options

from autom.schedule.spec import ScheduleSpec


def describe(spec: ScheduleSpec) -> str:
    """English sentence plus zone, e.g. "At 09:00, only on Monday (Europe/Zurich)"."""
    fields = list(spec._compiled.fields)
    # cron-descriptor only understands `?` in the day fields as `*`, and guesses whether
    # a 6-field expression has seconds or a year; 7 fields (year `*`) are unambiguous.
    fields[-3] = "*" if fields[-3] == "?" else fields[-3]
    fields[-1] = "*" if fields[-1] == "?" else fields[-1]
    if len(fields) == 6:
        fields.append("*")
    # Explicit locale and clock: the defaults read the host locale (and warn without one).
    options = Options(locale_code="en_US", use_24hour_time_format=True)
    try:
        text = ExpressionDescriptor(" ".join(fields), options).get_description()
    except Exception:  # cron-descriptor rejects some syntax croniter accepts
        text = f"Cron {spec.cron.strip()!r}"
    return f"{text} ({spec.timezone})"
