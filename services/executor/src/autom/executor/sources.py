"""What the executor reads from the definitions service: definition snapshots and secrets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.events.v1 import events_pb2
from autom.core.errors import (
    AutomError,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    Violation,
)
from autom.core.grpcserver import bearer
from autom.core.mcptools import Endpoint
from autom.core.protoconv import message_to_json, struct_to_dict

log = logging.getLogger(__name__)

DEFINITION_EVENTS = "automations.definitions.>"
# Definition events after which an active automation's triggers fire the announced version.
_FIRES_NEXT = frozenset(
    {
        events_pb2.DEFINITION_EVENT_TYPE_CREATED,
        events_pb2.DEFINITION_EVENT_TYPE_UPDATED,
        events_pb2.DEFINITION_EVENT_TYPE_RESUMED,
    }
)
# Automations remembered as paused, archived or deleted (the oldest are forgotten first).
STOPPED_KEPT = 10_000


@dataclass(frozen=True)
class Snapshot:
    """One immutable version of an automation's definition."""

    automation_id: str
    workspace_id: str
    version: int
    definition: dict[str, Any]
    created_by: str
    name: str = ""
    # Lifecycle at the time of the read ("active", "paused", "archived"); not part of the
    # immutable version, so only fresh reads (get_as) may be trusted for it.
    status: str = "active"
    pause_note: str = ""


class DefinitionSource(Protocol):
    """Gives the definition of an automation at a version (0 = latest)."""

    async def get(self, automation_id: str, version: int) -> Snapshot:
        """The snapshot; raises NotFound when it does not exist."""
        ...

    def stopped(self, automation_id: str) -> bool:
        """Whether the automation is known to be paused, archived or deleted now."""
        ...


class SecretSource(Protocol):
    """Resolves secret values of a workspace on behalf of a run."""

    async def resolve(self, workspace_id: str, names: Sequence[str], run_id: str) -> dict[str, str]:
        """name -> value; raises when unavailable; missing names are simply absent."""
        ...


def domain_error(exc: grpc.aio.AioRpcError, what: str) -> AutomError:
    """Map a definitions-service status to the matching domain error."""
    code = exc.code()
    detail = exc.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound("automation", what)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(detail)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(detail)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValidationFailed([Violation("automation_id", detail)])
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(detail)
    return Unavailable(f"definitions service: {code.name} {detail}".strip())


@dataclass(frozen=True)
class WebhookDelivery:
    """A delivery the definitions service proved genuine, and the trigger it is for."""

    workspace_id: str
    automation_id: str
    version: int
    active: bool
    trigger_id: str
    config: dict[str, Any]
    delivery_id: str
    created_by: str


@dataclass(frozen=True)
class EventTriggerMatch:
    """An event trigger an event matches (its filter not yet applied)."""

    automation_id: str
    version: int
    trigger_id: str
    config: dict[str, Any]
    created_by: str


class EventTriggerSource(Protocol):
    """Finds the event triggers of a workspace that an event matches."""

    async def match_event_triggers(
        self, workspace_id: str, subject: str, source_automation_id: str, source_status: str
    ) -> list[EventTriggerMatch]:
        """Matches by automation and trigger id."""
        ...


class WebhookSource(Protocol):
    """Proves webhook deliveries genuine (the signing secrets stay with definitions)."""

    async def authenticate_webhook(
        self, hook_id: str, headers: dict[str, str], body: bytes
    ) -> WebhookDelivery:
        """The delivery's trigger; raises the refusal (NotFound, Unauthenticated, ...)."""
        ...

    async def get(self, automation_id: str, version: int) -> Snapshot:
        """The snapshot; raises NotFound when it does not exist."""
        ...


def relayed_error(exc: grpc.aio.AioRpcError) -> AutomError:
    """The definitions service's refusal, passed on with its code, reason and fields."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"definitions service: {code.name}")
    message = exc.details() or ""
    reason = ""
    violations: list[Violation] = []
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        status = None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason = info.reason
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            violations = [Violation(v.field, v.description) for v in bad.field_violations]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValidationFailed(violations, message=message)
    error = AutomError(message, reason=reason or None)
    error.code = code
    return error


def automation_snapshot(automation: definitions_pb2.Automation) -> Snapshot:
    """A GetAutomation answer as a snapshot in the JSON form people write."""
    return Snapshot(
        automation_id=automation.id,
        workspace_id=automation.workspace_id,
        version=automation.version,
        definition=message_to_json(automation.definition),
        created_by=automation.created_by,
        name=automation.name,
        status=_status_name(automation.status),
        pause_note=automation.pause_note,
    )


def _status_name(status: int) -> str:
    """AUTOMATION_STATUS_PAUSED -> "paused"; unspecified reads as active."""
    name = definitions_pb2.AutomationStatus.Name(status).removeprefix("AUTOMATION_STATUS_").lower()
    return "active" if name == "unspecified" else name


def _is_id(ref: str) -> bool:
    try:
        uuid.UUID(ref)
    except ValueError:
        return False
    return True


class GrpcDefinitions:
    """Definitions over gRPC as the executor service; snapshots cached by (id, version).

    With `nc`, StartRun's lookups are cached too: the latest version of an automation id until
    a definitions event about it goes by (any change, delete included), a NATS reconnect, or
    `latest_seconds` pass (a bound for an event core NATS dropped). A StartRun racing an
    update may start the version that was current a few milliseconds earlier. Event trigger
    matches are kept the same way, until any definitions event (an event that lands while an
    automation with a new trigger is being saved may miss it by those milliseconds).

    `prefetch` (a background loop) fetches the version a definitions event announces for an
    active automation with triggers, so its fires find the snapshot cached: a thousand
    schedules due at once do not make a thousand GetAutomation calls while they fire.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        cache_size: int = 1024,
        nc: NATS | None = None,
        latest_seconds: float = 0.0,
    ) -> None:
        self._stub = dgrpc.DefinitionsServiceStub(channel)
        self._cache: OrderedDict[tuple[str, int], Snapshot] = OrderedDict()
        self._size = cache_size
        self._nc = nc
        self._latest_seconds = latest_seconds
        self._latest: OrderedDict[str, tuple[Snapshot, float]] = OrderedDict()
        self._matches: OrderedDict[tuple[str, ...], tuple[list[EventTriggerMatch], float]] = (
            OrderedDict()
        )
        self._sub: Subscription | None = None
        self._reconnects = 0
        self._events = 0
        self._lock = asyncio.Lock()
        # Automations whose latest definitions event said they fire no more (bounded).
        self._stopped: OrderedDict[str, None] = OrderedDict()
        # Announced versions to fetch ahead; bounded like the cache they fill.
        self._ahead: asyncio.Queue[tuple[str, int]] = asyncio.Queue(maxsize=cache_size)

    async def get(self, automation_id: str, version: int) -> Snapshot:
        """Cached: versions are immutable, so only `version=0` (latest) always asks."""
        key = (automation_id, version)
        if version and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        snapshot = await self._ask(
            dpb.GetAutomationRequest(automation_id=automation_id, version=version),
            f"{automation_id}@{version}",
        )
        self._remember(snapshot)
        return snapshot

    async def get_named(self, workspace_id: str, name: str) -> Snapshot:
        """The latest version of the automation called `name` in a workspace (never cached)."""
        snapshot = await self._ask(
            dpb.GetAutomationRequest(automation_id=name, workspace_id=workspace_id), name
        )
        self._remember(snapshot)
        return snapshot

    async def _ask(
        self, request: dpb.GetAutomationRequest, what: str, token: str | None = None
    ) -> Snapshot:
        """GetAutomation as this service, or as the caller of `token`."""
        try:
            response = await self._stub.GetAutomation(
                request, metadata=None if token is None else bearer(token), timeout=10.0
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error(exc, what) from exc
        return automation_snapshot(response.automation)

    def stopped(self, automation_id: str) -> bool:
        """Whether the latest definitions event seen of it (if any) left it not firing.

        Forgotten when events may have been missed (a reconnect): a fire is then run rather
        than skipped on what may be stale.
        """
        return self._current() and automation_id in self._stopped

    def holds(self, automation_id: str, version: int) -> bool:
        """Whether that version's snapshot is cached (a fire of it needs no definitions)."""
        return (automation_id, version) in self._cache

    def _remember(self, snapshot: Snapshot) -> None:
        self._cache[(snapshot.automation_id, snapshot.version)] = snapshot
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def get_as(self, token: str, automation_id: str, version: int) -> Snapshot:
        """Fetch as the caller (their workspace and rights decide what they see).

        A cached answer skips the call: the caller's token and its right to start runs were
        checked by this service, and the caller's workspace is checked against the snapshot's
        by the use case; what definitions adds (the automation exists, is not deleted) is what
        the definitions events keep current. Names (not ids) always ask.
        """
        cached = self._cached(automation_id, version) if await self.listen() else None
        if cached is not None:
            return cached
        asked, events = time.monotonic(), self._events
        snapshot = await self._ask(
            dpb.GetAutomationRequest(automation_id=automation_id, version=version),
            automation_id,
            token,
        )
        if self._sub is not None and _is_id(automation_id):
            self._remember(snapshot)
            if version == 0 and events == self._events:
                # Only when no definitions event went by during the call: it may be newer.
                self._latest[snapshot.automation_id] = (snapshot, asked)
                while len(self._latest) > self._size:
                    self._latest.popitem(last=False)
        return snapshot

    def _current(self) -> bool:
        """Whether no definitions event can have been missed (else forget what followed them)."""
        if self._nc is None:
            return False
        reconnects = int(self._nc.stats.get("reconnects", 0))
        if reconnects != self._reconnects or not self._nc.is_connected:
            # Events may have been missed while disconnected.
            self._reconnects = reconnects
            self._forget_events()
            return False
        return True

    def _forget_events(self) -> None:
        """Drop what was learnt from definitions events (the cache by version stays true)."""
        self._latest.clear()
        self._matches.clear()
        self._stopped.clear()

    def _cached(self, automation_id: str, version: int) -> Snapshot | None:
        if not self._current():
            return None
        if version:
            return self._cache.get((automation_id, version))
        entry = self._latest.get(automation_id)
        if entry is None:
            return None
        snapshot, since = entry
        if time.monotonic() - since > self._latest_seconds:
            del self._latest[automation_id]
            return None
        return snapshot

    async def listen(self) -> bool:
        """True once the definitions events subscription exists (subscribes on first use)."""
        if self._sub is not None:
            return True
        if self._nc is None or self._latest_seconds <= 0:
            return False
        async with self._lock:
            if self._sub is None:
                try:
                    self._sub = await self._nc.subscribe(DEFINITION_EVENTS, cb=self._on_event)
                    self._reconnects = int(self._nc.stats.get("reconnects", 0))
                except Exception:
                    log.warning("cannot subscribe to definitions events; StartRun asks each time")
                    return False
        # Nothing cached yet: the first lookups fill the cache.
        return True

    async def _on_event(self, msg: Msg) -> None:
        self._events += 1
        try:
            event = events_pb2.DefinitionEvent.FromString(msg.data)
        except DecodeError:
            # Unreadable: we cannot tell which automation changed.
            self._forget_events()
            return
        # Any change may add, drop or rename what an event trigger matches.
        self._matches.clear()
        self._stopped.pop(event.automation_id, None)
        if not event.active or event.type == events_pb2.DEFINITION_EVENT_TYPE_DELETED:
            self._stopped[event.automation_id] = None
            while len(self._stopped) > STOPPED_KEPT:
                self._stopped.popitem(last=False)
        self.forget(
            event.automation_id, deleted=event.type == events_pb2.DEFINITION_EVENT_TYPE_DELETED
        )
        if event.active and event.triggers and event.version > 0 and event.type in _FIRES_NEXT:
            with contextlib.suppress(asyncio.QueueFull):  # full: fires fetch it themselves
                self._ahead.put_nowait((event.automation_id, event.version))

    async def prefetch(self, stop: asyncio.Event) -> None:
        """Fetch the snapshots definitions events announce, one at a time, until stop."""
        await self.listen()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                waiting = asyncio.ensure_future(self._ahead.get())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    return
                automation_id, version = waiting.result()
                if self.holds(automation_id, version):
                    continue
                try:
                    await self.get(automation_id, version)
                except Exception as exc:
                    # Only a head start: the fire asks again and handles whatever it gets.
                    log.debug("prefetch of %s@%d failed: %s", automation_id, version, exc)
        finally:
            stopping.cancel()

    def forget(self, automation_id: str, *, deleted: bool = False) -> None:
        """Drop what is cached of an automation after it changed (every version when deleted)."""
        self._latest.pop(automation_id, None)
        if deleted:
            for key in [k for k in self._cache if k[0] == automation_id]:
                del self._cache[key]

    async def close(self) -> None:
        """Stop listening to definitions events."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def authenticate_webhook(
        self, hook_id: str, headers: dict[str, str], body: bytes
    ) -> WebhookDelivery:
        """AuthenticateWebhook as the executor service."""
        try:
            r = await self._stub.AuthenticateWebhook(
                dpb.AuthenticateWebhookRequest(hook_id=hook_id, headers=headers, body=body),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as exc:
            raise relayed_error(exc) from exc
        return WebhookDelivery(
            workspace_id=r.workspace_id,
            automation_id=r.automation_id,
            version=r.version,
            active=r.status == definitions_pb2.AUTOMATION_STATUS_ACTIVE,
            trigger_id=r.trigger_id,
            config=struct_to_dict(r.config),
            delivery_id=r.delivery_id,
            created_by=r.created_by,
        )

    async def workspace_quotas(self, workspace_id: str) -> tuple[dict[str, float], int]:
        """GetWorkspaceQuotas as the executor service."""
        try:
            r = await self._stub.GetWorkspaceQuotas(
                dpb.GetWorkspaceQuotasRequest(workspace_id=workspace_id), timeout=10.0
            )
        except grpc.aio.AioRpcError as exc:
            raise relayed_error(exc) from exc
        return dict(r.limits), int(r.active_automations)

    async def match_event_triggers(
        self, workspace_id: str, subject: str, source_automation_id: str, source_status: str
    ) -> list[EventTriggerMatch]:
        """MatchEventTriggers as the executor service (kept until a definitions event)."""
        key = (workspace_id, subject, source_automation_id, source_status)
        # A workspace where nothing listens matches no event, whatever its source.
        quiet = (workspace_id,)
        listening = await self.listen()
        if listening and self._current():
            for known in (quiet, key):
                hit = self._matches.get(known)
                if hit is not None and time.monotonic() - hit[1] <= self._latest_seconds:
                    self._matches.move_to_end(known)
                    return list(hit[0])
        asked, events = time.monotonic(), self._events
        try:
            r = await self._stub.MatchEventTriggers(
                dpb.MatchEventTriggersRequest(
                    workspace_id=workspace_id,
                    subject=subject,
                    source_automation_id=source_automation_id,
                    source_status=source_status,
                ),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as exc:
            raise relayed_error(exc) from exc
        found = [
            EventTriggerMatch(
                m.automation_id, m.version, m.trigger_id, struct_to_dict(m.config), m.created_by
            )
            for m in r.matches
        ]
        if listening and events == self._events:
            # Only when no definitions event went by during the call: it may have changed them.
            self._matches[quiet if r.no_listeners else key] = (found, asked)
            while len(self._matches) > self._size:
                self._matches.popitem(last=False)
        return list(found)

    async def resolve(self, workspace_id: str, names: Sequence[str], run_id: str) -> dict[str, str]:
        """ResolveSecrets as the executor service."""
        try:
            response = await self._stub.ResolveSecrets(
                dpb.ResolveSecretsRequest(
                    workspace_id=workspace_id, names=list(names), run_id=run_id
                ),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error(exc, workspace_id) from exc
        return dict(response.values)

    async def mcp_servers(
        self, workspace_id: str, names: Sequence[str], run_id: str
    ) -> dict[str, Endpoint]:
        """ResolveMcpServers as the executor service: the registered ones by name."""
        try:
            response = await self._stub.ResolveMcpServers(
                dpb.ResolveMcpServersRequest(
                    workspace_id=workspace_id, names=list(names), run_id=run_id
                ),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error(exc, workspace_id) from exc
        return {s.name: Endpoint.of(s.url, dict(s.headers)) for s in response.servers}


class StaticDefinitions:
    """Definitions held in memory: engine tests and benchmarks feed snapshots directly."""

    def __init__(self, snapshots: Sequence[Snapshot] = (), secrets: dict[str, str] | None = None):
        # MCP servers by name, as definitions would resolve them (any workspace).
        self.mcp: dict[str, Endpoint] = {}
        self._by_key: dict[tuple[str, int], Snapshot] = {}
        self._latest: dict[str, Snapshot] = {}
        self.secrets = dict(secrets or {})
        for snapshot in snapshots:
            self.add(snapshot)

    def add(self, snapshot: Snapshot) -> None:
        """Register a version (the highest one is the latest)."""
        self._by_key[(snapshot.automation_id, snapshot.version)] = snapshot
        latest = self._latest.get(snapshot.automation_id)
        if latest is None or latest.version <= snapshot.version:
            self._latest[snapshot.automation_id] = snapshot

    async def get(self, automation_id: str, version: int) -> Snapshot:
        """The snapshot or NotFound."""
        found = (
            self._latest.get(automation_id)
            if version == 0
            else self._by_key.get((automation_id, version))
        )
        if found is None:
            raise NotFound("automation", f"{automation_id}@{version}")
        return found

    def stopped(self, automation_id: str) -> bool:
        """Whether its latest snapshot is not active."""
        latest = self._latest.get(automation_id)
        return latest is not None and latest.status != "active"

    async def get_named(self, workspace_id: str, name: str) -> Snapshot:
        """The latest snapshot with that name in the workspace, or NotFound."""
        for snapshot in self._latest.values():
            if snapshot.workspace_id == workspace_id and snapshot.name == name:
                return snapshot
        raise NotFound("automation", name)

    async def get_as(self, token: str, automation_id: str, version: int) -> Snapshot:
        """Same as get (no identity in memory)."""
        return await self.get(automation_id, version)

    async def resolve(self, workspace_id: str, names: Sequence[str], run_id: str) -> dict[str, str]:
        """The configured secrets."""
        return {n: self.secrets[n] for n in names if n in self.secrets}

    async def mcp_servers(
        self, workspace_id: str, names: Sequence[str], run_id: str
    ) -> dict[str, Endpoint]:
        """The configured MCP servers."""
        return {n: self.mcp[n] for n in names if n in self.mcp}
