"""Settings of the scheduler service."""

from __future__ import annotations

from pydantic import Field

from autom.core.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    """AUTOM_* variables the scheduler reads."""

    grpc_port: int = Field(default=50052, ge=0, le=65535)
    # Schedules locked and fired per due-loop transaction.
    scheduler_batch_size: int = Field(default=500, ge=1, le=5000)
    # Longest the due loop sleeps without looking (it also wakes on definitions events).
    scheduler_max_sleep_s: float = Field(default=1.0, gt=0)
    # Fires due this soon are computed and committed ahead, then released on time by the
    # relay: a burst of same-second fires costs no computation at the instant itself.
    scheduler_lead_s: float = Field(default=2.0, ge=0, le=10)
    # A fire planned ahead is handed to the executors this long before its time (they claim
    # its run at once and start it on time): a burst of same-second fires does its round
    # trips before the instant. Within this window a pause, archive or delete stops the fire
    # only on an executor that saw it, and an edit no longer moves it. At most the lead
    # matters.
    scheduler_handover_s: float = Field(default=1.0, ge=0, le=5)
    # A nominal time at most this late is fired as on time; older ones follow `catchup`.
    scheduler_late_tolerance_s: float = Field(default=5.0, ge=0)
    # Catch-up fires emitted for one schedule per pass (the rest follow on the next pass).
    scheduler_catchup_chunk: int = Field(default=1000, ge=1)
    # Bound on the nominal times one Backfill call may fire.
    scheduler_backfill_max_fires: int = Field(default=1000, ge=1)
    # Backfilled fires are released to JetStream at most this fast.
    scheduler_backfill_rate_per_s: float = Field(default=50.0, gt=0)
    # Seconds between attempts to resync from the definitions service while it is down.
    scheduler_resync_retry_s: float = Field(default=5.0, gt=0)
    # Fire rows older than this are pruned (the schedule's next_fire_at guards the past).
    scheduler_fire_retention_days: float = Field(default=30.0, gt=0)
    # Overrides the fires stream's JetStream dedupe window (tests shorten it).
    scheduler_fires_dedupe_window_s: float | None = Field(default=None, gt=0)
    # Resync from the definitions service at start (benchmarks without it turn this off).
    scheduler_resync_on_start: bool = True
    # A definition or run event that fails for a transient reason (database, NATS) is
    # redelivered without limit, after a delay doubling from base up to cap per delivery.
    scheduler_event_retry_base_s: float = Field(default=0.5, gt=0)
    scheduler_event_retry_cap_s: float = Field(default=30.0, gt=0)
