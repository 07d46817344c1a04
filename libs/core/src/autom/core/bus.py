"""NATS JetStream: connection, stream declaration, publishing, pull consumers, outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import nats
import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Delete,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Update,
    any_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.core import metrics, tracing

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
# Set by JetStream on a message another stream republished onto its subject. Server-side
# republish (a stream owner's setting) bypasses the subject permissions of natsauth, so such
# a message never came from the subject's own publisher: consumers refuse it.
REPUBLISHED_FROM = "Nats-Stream"
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delay before a message comes back (nak with this delay)."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, deliveries: int) -> float:
        """The delay after the `deliveries`-th delivery (1-based): doubling, capped."""
        return min(self.cap_s, self.base_s * 2.0 ** min(max(0, deliveries - 1), 32))


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream every service declares the same way."""

    name: str
    subjects: tuple[str, ...]
    # Dedupe window for Nats-Msg-Id; exactly-once never rests on it alone (database keys do).
    duplicate_window_s: float = 120.0
    max_age_s: float = 7 * 24 * 3600.0


# Each stream is declared by its owner only (definitions: DEFINITIONS + AUTH + AUDIT; scheduler:
# FIRES; executor: RUNS + CUSTOM); ALL_STREAMS is for tests and benchmarks standing in for them.
DEFINITIONS_STREAM = StreamSpec("AUTOM_DEFINITIONS", ("automations.definitions.>",))
FIRES_STREAM = StreamSpec("AUTOM_FIRES", ("automations.fires.>",))
RUNS_STREAM = StreamSpec("AUTOM_RUNS", ("automations.runs.>",))
# Revocations outlive the longest token (1 year), so every replica can replay them all.
AUTH_STREAM = StreamSpec("AUTOM_AUTH", ("automations.auth.>",), max_age_s=400 * 24 * 3600.0)
CUSTOM_STREAM = StreamSpec("AUTOM_CUSTOM", ("automations.custom.>",), max_age_s=24 * 3600.0)
# Every service's audit entries on their way to definitions, which stores them for good.
AUDIT_STREAM = StreamSpec("AUTOM_AUDIT", ("automations.audit.>",), max_age_s=30 * 24 * 3600.0)
ALL_STREAMS = (
    DEFINITIONS_STREAM,
    FIRES_STREAM,
    RUNS_STREAM,
    AUTH_STREAM,
    CUSTOM_STREAM,
    AUDIT_STREAM,
)
# Fire ids the executor mints itself: StartRun, RetryRun, webhook deliveries, event
# triggers. Scheduler fire ids start with an automation id (a UUID), so a run event whose fire
# id has one of these prefixes has no fire row to annotate in the scheduler.
MANUAL_FIRE_PREFIX = "manual:"
RETRY_FIRE_PREFIX = "retry:"
WEBHOOK_FIRE_PREFIX = "webhook:"
EVENT_FIRE_PREFIX = "event:"
EXECUTOR_FIRE_PREFIXES = (
    MANUAL_FIRE_PREFIX,
    RETRY_FIRE_PREFIX,
    WEBHOOK_FIRE_PREFIX,
    EVENT_FIRE_PREFIX,
)
# Run events: `automations.runs.<type>` for runs of the scheduler's fires, with `.manual`
# appended for runs of the executor's own (as those fires' subjects end in `.manual`). A
# consumer of scheduled runs only (the scheduler) filters on the exact subject and the
# server never delivers it the others; `automations.runs.<type>.>` matches only those.
RUN_EVENT_SUBJECT = "automations.runs.{}"
OWN_RUN_SUFFIX = ".manual"


def run_event_subject(kind: str, fire_id: str) -> str:
    """The subject of a run's `kind` event (started, step_finished, finished)."""
    subject = RUN_EVENT_SUBJECT.format(kind)
    return subject + OWN_RUN_SUFFIX if fire_id.startswith(EXECUTOR_FIRE_PREFIXES) else subject


# Messages no consumer can decode; declared by the executor only. A stream, not a table, so
# parking a poison message never depends on the database being up.
DEAD_LETTERS_STREAM = StreamSpec(
    "AUTOM_DEAD_LETTERS", ("automations.deadletters.>",), max_age_s=30 * 24 * 3600.0
)


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    inbox_prefix: str = "_INBOX",
) -> NATS:
    """Connect with unbounded reconnects; the caller drains it on shutdown.

    `inbox_prefix` is where replies reach this client: a service's NATS user may subscribe
    to its own prefix only (autom.core.natsauth).
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    # AUTOM_NATS_URL names a cluster as a comma-separated list: nats-py wants a list, and
    # knowing every node lets a process start while one of them is down.
    servers = [server.strip() for server in url.split(",") if server.strip()]
    return await nats.connect(
        servers,
        name=name,
        user=user,
        password=password,
        inbox_prefix=inbox_prefix,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


# A stream declared while the server still builds or removes a store of that name settles
# within a few tries.
_DECLARE_ATTEMPTS = 5


async def ensure_streams(
    js: JetStreamContext, specs: tuple[StreamSpec, ...] = ALL_STREAMS, *, replicas: int = 1
) -> None:
    """Declare streams idempotently; an existing stream is updated to the declared config.

    File storage always; `replicas` is 3 on a production cluster (AUTOM_NATS_STREAM_REPLICAS).
    """
    for spec in specs:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=spec.duplicate_window_s,
            max_age=spec.max_age_s,
        )
        for attempt in range(_DECLARE_ATTEMPTS):
            try:
                await _declare(js, config)
                break
            except (nats.js.errors.ServerError, nats.js.errors.NotFoundError):
                # "error creating store for stream": the server is still building the store
                # of a declaration made at the same moment elsewhere, or still removing the
                # store of a stream just deleted (seen in CI: a declare right after a delete);
                # the stream may also be gone before its update. A moment later it goes.
                if attempt == _DECLARE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))


async def _declare(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or apply `config` to the existing one."""
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)


async def publish(
    js: JetStreamContext, subject: str, payload: bytes, *, msg_id: str, timeout: float = 5.0
) -> bool:
    """Publish with a Nats-Msg-Id; returns False when JetStream saw it as a duplicate."""
    ack = await js.publish(subject, payload, timeout=timeout, headers={MSG_ID: msg_id})
    return not ack.duplicate


async def publish_batch(
    js: JetStreamContext,
    messages: Sequence[tuple[str, bytes, str]],
    *,
    timeout: float = 10.0,
    headers: Sequence[Mapping[str, str]] | None = None,
) -> None:
    """Publish (subject, payload, msg_id) messages pipelined, then wait for every ack.

    `headers`, one mapping per message, adds to its headers (e.g. a trace's `traceparent`).
    Raises if any ack fails or times out; callers then leave their rows unpublished.
    """
    extra = headers or [{}] * len(messages)
    futures = [
        await js.publish_async(subject, payload, headers={**more, MSG_ID: msg_id})
        for (subject, payload, msg_id), more in zip(messages, extra, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout)


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """The transactional outbox of one service: rows written with the change they announce.

    A service keeps its audit entries in a second one (`audit_outbox`), relayed on its own,
    so entries waiting for the AUDIT stream never hold up the service's events.
    """
    table = Table(
        name,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("subject", String(255), nullable=False),
        Column("msg_id", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
    )
    Index(
        f"ix_{name}_unpublished",
        table.c.id,
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


def outbox_row(subject: str, msg_id: str, payload: bytes) -> dict[str, object]:
    """Values for one outbox insert."""
    return {
        "subject": subject,
        "msg_id": msg_id,
        "payload": payload,
        "created_at": datetime.now(UTC),
    }


PublishedHook = Callable[[AsyncConnection, list[str], datetime], Awaitable[None]]
# (subject, payload, msg_id, headers) of one message.
Message = tuple[str, bytes, str, dict[str, str]]


class _Committed(NamedTuple):
    """An outbox row its writer handed over after the commit (it has no id to read back)."""

    subject: str
    msg_id: str
    payload: bytes


# Outbox rows (id, subject, msg_id, payload) -> the messages that carry them all.
Combine = Callable[[Sequence[Any]], list[Message]]


class OutboxRelay:
    """Publishes committed outbox rows; any replica may run it (rows are locked SKIP LOCKED).

    A batch is published pipelined and its rows are marked (or deleted) only after JetStream
    acknowledged every message, in the transaction that locked them. Options cover each
    service's needs: `keep_published=None` deletes rows once published (keeps a hot outbox's
    index tiny); `release_at_created` treats `created_at` as a release time (rows planned
    ahead wait for it); `on_published` runs in the same transaction with the published
    msg_ids and the ack time (e.g. to stamp the records they announce); `combine` turns a
    batch of rows into fewer messages (entries that travel together).

    A writer that knows the rows it committed hands them over (`hand_over`): they are
    published without a pass (no transaction, no read), then marked by msg_id in one
    statement; a pass still runs every `poll_interval` for rows nobody handed over.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        table: Table,
        js: JetStreamContext,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        keep_published: timedelta | None = timedelta(days=1),
        release_at_created: bool = False,
        on_published: PublishedHook | None = None,
        ack_timeout: float = 10.0,
        trace_parent: Callable[[str], Context] | None = None,
        combine: Combine | None = None,
    ) -> None:
        if combine is not None and trace_parent is not None:
            raise ValueError("a combined message has no single trace to join")
        self._combine = combine
        self._engine = engine
        self._table = table
        self._js = js
        self._batch = batch_size
        self._poll = poll_interval
        self._keep = keep_published
        self._release = release_at_created
        self._on_published = on_published
        self._ack_timeout = ack_timeout
        # Given a msg_id, the trace its publish span joins (the relay of fires: the fire's).
        self._trace_parent = trace_parent
        self._wake = asyncio.Event()
        self._handed: list[_Committed] = []
        # A pass is due: at start, after a notify(), after a failure.
        self._pass_wanted = True
        # Built once (a pass runs them all): SQLAlchemy then builds no statement per pass, and
        # `= ANY(:ids)` is one SQL text whatever the batch's size (one prepared statement).
        t = table
        pending = select(t.c.id, t.c.subject, t.c.msg_id, t.c.payload).where(
            t.c.published_at.is_(None)
        )
        if release_at_created:
            pending = pending.where(t.c.created_at <= bindparam("now"))
        self._pending = pending.order_by(t.c.id).limit(batch_size).with_for_update(skip_locked=True)
        self._done = self._mark(t.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        # Rows handed over are found by msg_id among the unpublished ones (the partial index):
        # a row a concurrent pass already took is left alone.
        self._done_handed = self._mark(
            t.c.published_at.is_(None)
            & (t.c.msg_id == any_(bindparam("msg_ids", type_=ARRAY(String))))
        ).returning(t.c.msg_id)

    def _mark(self, rows: ColumnElement[bool]) -> Delete | Update:
        """The statement marking `rows` published: deleted, or stamped with the ack time."""
        t = self._table
        if self._keep is None:
            return delete(t).where(rows)
        return update(t).where(rows).values(published_at=bindparam("acked"))

    def notify(self) -> None:
        """Wake the relay for a pass after a commit that wrote outbox rows."""
        self._pass_wanted = True
        self._wake.set()

    def hand_over(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Publish rows their writer just committed (`outbox_row` values) without a pass.

        Only for rows due now: not for a relay that releases rows later or combines them.
        A row whose publish fails stays in the table for the next pass; one a pass publishes
        as well is stored once (JetStream drops the repeated msg_id).
        """
        if self._release or self._combine is not None:
            raise ValueError("rows released later or combined go through a pass")
        self._handed += [_Committed(r["subject"], r["msg_id"], r["payload"]) for r in rows]
        if len(self._handed) > self._batch:
            # More than a pass takes at once (a burst, or no loop running): a pass reads them.
            self._handed = []
            self._pass_wanted = True
        self._wake.set()

    async def publish_handed(self) -> int:
        """Publish the rows handed over so far and mark them; returns how many were marked."""
        rows, self._handed = self._handed, []
        if not rows:
            return 0
        try:
            acked = await self._publish(rows)
        except Exception:
            log.warning(
                "outbox relay: publishing %d committed rows failed; a pass retries them",
                len(rows),
                exc_info=True,
            )
            self._pass_wanted = True
            return 0
        params = self._marks("msg_ids", [r.msg_id for r in rows], acked)
        if self._on_published is None:
            # One statement alone: no transaction to open and commit around it.
            async with self._engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                marked = list((await auto.execute(self._done_handed, params)).scalars())
            return len(marked)
        async with self._engine.begin() as conn:
            marked = list((await conn.execute(self._done_handed, params)).scalars())
            if marked:
                await self._on_published(conn, marked, acked)
        return len(marked)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished (released) rows; returns how many were published."""
        async with self._engine.begin() as conn:
            now = {"now": datetime.now(UTC)} if self._release else {}
            rows = (await conn.execute(self._pending, now)).all()
            if not rows:
                return 0
            acked = await self._publish(rows)
            await conn.execute(self._done, self._marks("ids", [r.id for r in rows], acked))
            if self._on_published is not None:
                await self._on_published(conn, [r.msg_id for r in rows], acked)
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> datetime:
        """Publish the messages carrying `rows` (their spans end with the outcome); ack time."""
        messages, spans, headers = self._messages(rows)
        try:
            await publish_batch(self._js, messages, timeout=self._ack_timeout, headers=headers)
        except BaseException as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
                span.end()
            raise
        for span in spans:
            span.end()
        return datetime.now(UTC)

    def _marks(self, key: str, values: list[Any], acked: datetime) -> dict[str, Any]:
        """Bind parameters marking rows published: deleted, or stamped with the ack time."""
        return {key: values} if self._keep is None else {key: values, "acked": acked}

    def _messages(
        self, rows: Sequence[Any]
    ) -> tuple[list[tuple[str, bytes, str]], list[Span], list[dict[str, str]] | None]:
        """The messages carrying `rows`, their producer spans and their extra headers."""
        if self._combine is None:
            spans, headers = self._publish_spans(rows)
            return [(r.subject, r.payload, r.msg_id) for r in rows], spans, headers
        combined = self._combine(rows)
        messages = [(subject, payload, msg_id) for subject, payload, msg_id, _ in combined]
        return messages, [], [extra for *_, extra in combined]

    def _publish_spans(self, rows: Sequence[Any]) -> tuple[list[Span], list[dict[str, str]] | None]:
        """A producer span per row, and the headers that carry each onward (tracing on)."""
        if self._trace_parent is None:
            return [], None
        spans, headers = [], []
        for row in rows:
            span = tracing.tracer().start_span(
                f"publish {row.subject}",
                context=self._trace_parent(row.msg_id),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": row.subject,
                    "messaging.message.id": row.msg_id,
                },
            )
            carrier: dict[str, str] = {}
            tracing.inject(carrier, trace.set_span_in_context(span))
            spans.append(span)
            headers.append(carrier)
        return spans, headers

    async def prune_published(self) -> int:
        """Delete rows published longer ago than `keep_published` (kept a while to debug)."""
        if self._keep is None:
            return 0
        t = self._table
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.published_at < datetime.now(UTC) - self._keep)
            )
        return int(result.rowcount or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until stop is set; failures are logged and retried (rows stay unpublished)."""
        next_prune = next_sample = next_pass = time.monotonic()
        while not stop.is_set():
            # Cleared before the work: a notify() or hand_over() meanwhile wakes the wait.
            self._wake.clear()
            try:
                await self.publish_handed()
                if self._pass_wanted or time.monotonic() >= next_pass:
                    self._pass_wanted = False
                    while await self.publish_pending() == self._batch:
                        pass
                    if time.monotonic() >= next_sample:
                        await self.sample_backlog()
                        next_sample = time.monotonic() + metrics.SAMPLE_EVERY_S
                    if time.monotonic() >= next_prune:
                        await self.prune_published()
                        next_prune = time.monotonic() + PRUNE_EVERY_S
                    next_pass = time.monotonic() + await self._until_next_release()
            except Exception:
                log.exception("outbox relay failed; will retry")
                self._pass_wanted = True
                await wait_any(stop, None, 1.0)
                continue
            await wait_any(stop, self._wake, max(0.0, next_pass - time.monotonic()))

    async def sample_backlog(self) -> tuple[int, float]:
        """Set the backlog gauges: released unpublished rows and the oldest one's age."""
        t = self._table
        query = select(func.count(), func.min(t.c.created_at)).where(t.c.published_at.is_(None))
        now = datetime.now(UTC)
        if self._release:
            query = query.where(t.c.created_at <= now)
        async with self._engine.connect() as conn:
            count, oldest = (await conn.execute(query)).one()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        label = t.schema or t.name
        metrics.OUTBOX_BACKLOG.labels(label).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(label).set(age)
        return int(count), age

    async def _until_next_release(self) -> float:
        """Seconds until the earliest pending row is released, at most the poll interval."""
        if not self._release:
            return self._poll
        t = self._table
        async with self._engine.connect() as conn:
            first = (
                await conn.execute(
                    select(func.min(t.c.created_at)).where(t.c.published_at.is_(None))
                )
            ).scalar_one_or_none()
        if first is None:
            return self._poll
        delay: float = (first - datetime.now(UTC)).total_seconds()
        return max(0.0, min(self._poll, delay))


async def wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Return when stop or wake is set, or after timeout seconds."""
    if stop.is_set() or (wake is not None and wake.is_set()):
        return
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def pull_subscription(
    js: JetStreamContext,
    *,
    subject: str | tuple[str, ...],
    durable: str,
    stream: str,
    ack_wait_s: float = 30.0,
    max_deliver: int = 10,
    max_ack_pending: int = 1000,
) -> JetStreamContext.PullSubscription:
    """A durable pull consumer shared by every replica that binds the same durable name.

    `subject` is the filter, or several (the consumer then skips the stream's other
    messages on the server: nothing to deliver and ack). The declared config is applied to
    an existing durable too (nats-py would bind to it unchanged). Raises NotFoundError while
    the stream does not exist yet: its owner declares it, and the caller's supervisor retries.
    """
    subjects = (subject,) if isinstance(subject, str) else subject
    config = ConsumerConfig(
        name=durable,
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=list(subjects) if len(subjects) > 1 else None,
    )
    await reconcile_consumer(js, stream, config)
    return await js.pull_subscribe(subjects[0], durable=durable, stream=stream)


_RECONCILED = ("ack_wait", "max_deliver", "max_ack_pending", "filter_subject", "filter_subjects")


async def reconcile_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or update it where its settings differ from `config`."""
    assert config.durable_name is not None
    try:
        info = await js.consumer_info(stream, config.durable_name)
    except nats.js.errors.NotFoundError:
        info = None
    if info is not None:
        current = info.config
        drift = {
            k: (getattr(current, k), getattr(config, k))
            for k in _RECONCILED
            if getattr(current, k) != getattr(config, k)
        }
        if not drift:
            return
        log.info("consumer %s/%s: applying changed settings %s", stream, config.durable_name, drift)
    # NATS >= 2.10 treats a create with an existing durable's name as create-or-update.
    await js.add_consumer(stream, config)


Handler = Callable[[Msg], Awaitable[None]]


def republished_from(msg: Msg) -> str | None:
    """The stream that republished `msg` onto its subject, or None for a message published
    by a client (allowed to publish there)."""
    return (msg.headers or {}).get(REPUBLISHED_FROM)


# How long one pull request stays open on the server. The request is renewed as messages are
# handled, so this only bounds how long a request lost without notice (its server gone, the
# connection not yet known to be broken) leaves a consumer idle.
PULL_EXPIRES_S = 5.0
_PENDING_MESSAGES = "Nats-Pending-Messages"


class _Pulls:
    """The messages a consumer asked JetStream for and has not received yet.

    Open pull requests on the durable deliver into one inbox as messages come, instead of a
    fetch per batch (a fetch costs two or three requests and a status reply). Each request
    asks at most for the handler slots free at that moment, so deliveries never outrun them.
    """

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self.nc: NATS = sub._nc
        # nats-py keeps the durable's next-message subject private (it carries the API prefix).
        self.next_subject: str = sub._nms
        self.inbox = self.nc.new_inbox()
        self.outstanding = 0
        self.asked_at = 0.0
        self.heard_at = 0.0
        self.reconnects = self.nc.stats["reconnects"]
        self.gone: str | None = None

    async def ask(self, free: int) -> None:
        """Open one more request for `free` messages."""
        request = {"batch": free, "expires": int(PULL_EXPIRES_S * 1e9)}
        await self.nc.publish(self.next_subject, json.dumps(request).encode(), reply=self.inbox)
        self.outstanding += free
        self.asked_at = time.monotonic()

    def forget_lost(self) -> None:
        """Count nothing as asked when the open requests can no longer deliver (a reconnect,
        or none heard of past their expiry)."""
        reconnects = self.nc.stats["reconnects"]
        quiet = time.monotonic() - max(self.asked_at, self.heard_at)
        if reconnects != self.reconnects or quiet > PULL_EXPIRES_S + 1.0:
            self.reconnects = reconnects
            self.outstanding = 0

    def received(self, msg: Msg) -> bool:
        """Account for what arrived on the inbox; True when `msg` is a message to handle."""
        self.heard_at = time.monotonic()
        headers = msg.headers or {}
        code = headers.get(nats.js.api.Header.STATUS)
        if not code or msg.data:
            # A message uses one slot of the requests it answers.
            self.outstanding = max(0, self.outstanding - 1)
            return True
        if code == nats.js.api.StatusCode.REQUEST_TIMEOUT:
            # An expired request says how many of its messages never came.
            try:
                self.outstanding -= int(headers.get(_PENDING_MESSAGES, "0"))
            except ValueError:
                self.outstanding = 0
            self.outstanding = max(0, self.outstanding)
        elif code == nats.js.api.StatusCode.CONFLICT:
            description = headers.get(nats.js.api.Header.DESCRIPTION, "")
            if "deleted" in description.lower():
                self.gone = description
            # Leadership change, server shutdown, a refused request: ask anew.
            self.outstanding = 0
        return False


async def consume(
    sub: JetStreamContext.PullSubscription,
    handler: Handler,
    stop: asyncio.Event,
    *,
    batch: int = 50,
    max_in_flight: int = 100,
    fetch_timeout: float = 0.5,
    max_fetch_failures: int = 10,
) -> None:
    """Pull and handle messages until stop; at most max_in_flight handlers run at once.

    Handlers own ack/nak/term; an exception from a handler naks the message for redelivery.
    A message another stream republished is terminated unhandled (see REPUBLISHED_FROM).
    `fetch_timeout` is how often the loop looks at stop and its requests; on stop, messages
    already delivered are handled, not left to the ack wait. Raises when the connection is
    closed, the consumer is deleted or asking keeps failing, so a supervisor can report the
    loop down and subscribe anew.
    """
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    pulls = _Pulls(sub)
    # Half the slots free (or nothing asked at all): ask again, in few larger requests.
    refill = max(1, min(batch, max_in_flight // 2))
    wake = asyncio.Event()

    def free() -> int:
        return max_in_flight - len(tasks) - pulls.outstanding

    def should_ask() -> bool:
        free_now = free()
        return free_now >= refill or (pulls.outstanding == 0 and free_now > 0)

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if should_ask():
            wake.set()

    async def guarded(msg: Msg) -> None:
        try:
            if (origin := republished_from(msg)) is not None:
                log.warning(
                    "refusing a message on %s republished by stream %s", msg.subject, origin
                )
                await msg.term()
                return
            await handler(msg)
        except Exception:
            log.exception("message handler failed; nak for redelivery")
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        finally:
            slots.release()

    # nats-py exposes no getter for the names the subscription was bound with.
    stream = str(getattr(sub, "_stream", "unknown"))
    durable = str(getattr(sub, "_consumer", "unknown"))
    redeliveries = metrics.CONSUMER_REDELIVERIES.labels(stream, durable)

    async def delivered(msg: Msg) -> None:
        if not pulls.received(msg):
            wake.set()
            return
        if _delivery_count(msg) > 1:
            redeliveries.inc()
        # Never waits unless requests overlapped after a reset: each asks for free slots only.
        await slots.acquire()
        task = asyncio.create_task(guarded(msg))
        tasks.add(task)
        task.add_done_callback(done)

    inbox = await pulls.nc.subscribe(pulls.inbox, cb=delivered)
    failures = 0
    next_sample = time.monotonic()
    try:
        while not stop.is_set():
            if pulls.nc.is_closed:
                # Returning quietly would leave the service consuming nothing: let it restart.
                raise nats.errors.ConnectionClosedError
            if pulls.gone is not None:
                raise nats.js.errors.NotFoundError(code=409, description=pulls.gone)
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + metrics.SAMPLE_EVERY_S
                await _sample_consumer(sub, stream, durable)
            pulls.forget_lost()
            wake.clear()
            # Requests for every free slot, `batch` messages at most each.
            while not stop.is_set() and should_ask():
                try:
                    await pulls.ask(min(free(), batch))
                    failures = 0
                except nats.errors.ConnectionClosedError:
                    if stop.is_set():
                        break
                    raise
                except Exception:
                    failures += 1
                    if failures >= max_fetch_failures:
                        raise
                    log.exception("pull request failed; retrying")
                    await wait_any(stop, None, 0.5)
                    continue
            await wait_any(stop, wake, fetch_timeout)
    finally:
        # Drained: interest ends at the server first, then what it already sent is handled.
        with contextlib.suppress(Exception):
            await inbox.drain()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _delivery_count(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:
        return 1  # not a JetStream message (no reply subject to read it from)


async def _sample_consumer(
    sub: JetStreamContext.PullSubscription, stream: str, durable: str
) -> None:
    """Set the consumer gauges from NATS; a failure only leaves them stale."""
    try:
        info = await sub.consumer_info()
    except Exception:
        log.debug("consumer info of %s/%s unavailable", stream, durable, exc_info=True)
        return
    metrics.CONSUMER_PENDING.labels(stream, durable).set(info.num_pending or 0)
    metrics.CONSUMER_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
    metrics.CONSUMER_REDELIVERED.labels(stream, durable).set(info.num_redelivered or 0)
