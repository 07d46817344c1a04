"""Triggers the executor asks about: webhook endpoints (hook ids, rotation, delivery checks)
and the event triggers an event matches."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.core.auth import ANY_WORKSPACE, Principal
from autom.core.db import reading
from autom.core.errors import NotFound, PermissionDenied, Unauthenticated
from autom.definitions import db
from autom.definitions.access import AccessService
from autom.definitions.domain.events import event_triggers, matches
from autom.definitions.domain.webhook import WebhookTrigger, verify, webhook_triggers

log = logging.getLogger(__name__)

WEBHOOK_CALLER = "service:executor"
HOOK_PATH = "/v1/hooks/{}"


def new_hook_id() -> str:
    """192 random bits, URL-safe: the URL is the first secret of a webhook."""
    return "wh_" + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Endpoint:
    """One webhook trigger's URL."""

    trigger_id: str
    hook_id: str

    @property
    def path(self) -> str:
        """Where deliveries go, relative to the gateway."""
        return HOOK_PATH.format(self.hook_id)


@dataclass(frozen=True)
class Delivery:
    """A delivery proven genuine, and the trigger it is for."""

    workspace_id: str
    automation_id: str
    version: int
    status: str
    trigger: WebhookTrigger
    delivery_id: str
    created_by: str


async def sync_webhooks(
    conn: AsyncConnection,
    workspace_id: str,
    automation_id: str,
    definition: Mapping[str, Any],
    *,
    created: bool = False,
) -> None:
    """Give each webhook trigger a hook id (kept across versions); drop those of removed ones.

    `created`: the automation is new in this transaction, so it has no hook id yet.
    """
    t = db.webhooks
    wanted = {w.trigger_id for w in webhook_triggers(definition)}
    have: set[str] = set()
    if not created:
        query = select(t.c.trigger_id).where(t.c.automation_id == automation_id)
        have = set((await conn.execute(query)).scalars().all())
    gone = have - wanted
    if gone:
        await conn.execute(
            delete(t).where(t.c.automation_id == automation_id, t.c.trigger_id.in_(gone))
        )
    now = datetime.now(UTC)
    for trigger_id in sorted(wanted - have):
        await conn.execute(
            insert(t).values(
                hook_id=new_hook_id(),
                workspace_id=workspace_id,
                automation_id=automation_id,
                trigger_id=trigger_id,
                created_at=now,
            )
        )


async def drop_webhooks(conn: AsyncConnection, automation_id: str) -> None:
    """A deleted automation's URLs stop answering."""
    await conn.execute(delete(db.webhooks).where(db.webhooks.c.automation_id == automation_id))


class WebhookService:
    """Reads, rotates and authenticates webhook endpoints."""

    def __init__(self, engine: AsyncEngine, access: AccessService) -> None:
        self._engine = engine
        self._access = access

    @property
    def engine(self) -> AsyncEngine:
        """The definitions database (event-trigger matching reads it too)."""
        return self._engine

    async def endpoints(
        self, caller: Principal, automation_id: str, definition: Mapping[str, Any]
    ) -> list[Endpoint]:
        """The URLs of the webhook triggers of an automation whose latest definition is
        `definition`; empty for viewers (it is a secret)."""
        # sync_webhooks keeps one row per webhook trigger of the latest definition, written
        # with it: without such a trigger there is no row to read.
        if not caller.can("automations:update") or not webhook_triggers(definition):
            return []
        t = db.webhooks
        async with reading(self._engine) as conn:
            rows = (
                await conn.execute(
                    select(t.c.trigger_id, t.c.hook_id)
                    .where(t.c.automation_id == automation_id)
                    .order_by(t.c.trigger_id)
                )
            ).all()
        return [Endpoint(r.trigger_id, r.hook_id) for r in rows]

    async def rotate(self, caller: Principal, automation_id: str, trigger_id: str) -> Endpoint:
        """A new hook id for one trigger; the old URL answers 404 from now on."""
        t = db.webhooks
        hook_id = new_hook_id()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(t)
                    .where(t.c.automation_id == automation_id, t.c.trigger_id == trigger_id)
                    .values(hook_id=hook_id, created_at=datetime.now(UTC))
                    .returning(t.c.workspace_id)
                )
            ).one_or_none()
        if row is None or not caller.sees(row.workspace_id):
            raise NotFound("webhook trigger", f"{automation_id}/{trigger_id}")
        log.info(
            "webhook rotated",
            extra={"automation_id": automation_id, "trigger_id": trigger_id},
        )
        return Endpoint(trigger_id, hook_id)

    async def authenticate(
        self, caller: Principal, hook_id: str, headers: Mapping[str, str], body: bytes
    ) -> Delivery:
        """The trigger of a genuine delivery; NotFound, Unauthenticated or a size error else."""
        if caller.subject != WEBHOOK_CALLER or caller.workspace_id != ANY_WORKSPACE:
            raise PermissionDenied("only the executor may authenticate webhook deliveries")
        w, a = db.webhooks, db.automations
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        w.c.trigger_id,
                        a.c.id,
                        a.c.workspace_id,
                        a.c.version,
                        a.c.status,
                        a.c.definition,
                        a.c.created_by,
                    )
                    .join(a, a.c.id == w.c.automation_id)
                    .where(w.c.hook_id == hook_id, a.c.deleted_at.is_(None))
                )
            ).one_or_none()
        if row is None:
            raise NotFound("webhook", hook_id)
        trigger = next(
            (x for x in webhook_triggers(row.definition) if x.trigger_id == row.trigger_id), None
        )
        if trigger is None:
            raise NotFound("webhook", hook_id)
        secret = await self._access.secret_value(row.workspace_id, str(trigger.config["secret"]))
        if secret is None:
            # The owner has not set the secret yet: nobody can prove a delivery genuine.
            log.warning(
                "webhook secret %s is not set",
                trigger.config["secret"],
                extra={"automation_id": row.id},
            )
            raise Unauthenticated(
                f"this webhook's secret {trigger.config['secret']} is not set in the workspace"
            )
        delivery_id = verify(trigger.config, headers, body, secret, datetime.now(UTC))
        return Delivery(
            workspace_id=row.workspace_id,
            automation_id=row.id,
            version=row.version,
            status=row.status,
            trigger=trigger,
            delivery_id=delivery_id,
            created_by=row.created_by,
        )


@dataclass(frozen=True)
class EventMatch:
    """An event trigger one event matches."""

    automation_id: str
    version: int
    trigger_id: str
    config: dict[str, Any]
    created_by: str


async def match_event_triggers(
    engine: AsyncEngine,
    caller: Principal,
    *,
    workspace_id: str,
    subject: str,
    source_automation_id: str,
    source_status: str,
) -> tuple[list[EventMatch], bool]:
    """The event triggers of the workspace's active automations that the event matches, and
    whether any of them has an event trigger at all."""
    if caller.subject != WEBHOOK_CALLER or caller.workspace_id != ANY_WORKSPACE:
        raise PermissionDenied("only the executor may match event triggers")
    a = db.automations
    live = (a.c.workspace_id == workspace_id, a.c.deleted_at.is_(None))
    async with reading(engine) as conn:
        rows = (
            await conn.execute(
                select(a.c.id, a.c.version, a.c.definition, a.c.created_by)
                .where(a.c.workspace_id == workspace_id, db.LISTENS_FOR_EVENTS)
                .order_by(a.c.id)
            )
        ).all()
        names: set[str] = set()
        if rows and source_automation_id:
            name = (
                await conn.execute(select(a.c.name).where(*live, a.c.id == source_automation_id))
            ).scalar_one_or_none()
            names = {source_automation_id} | ({name} if name else set())
    out = []
    for row in rows:
        for trigger in event_triggers(row.definition):
            if matches(
                trigger.config,
                subject=subject,
                source_names=names,
                source_status=source_status,
            ):
                out.append(
                    EventMatch(
                        row.id, row.version, trigger.trigger_id, trigger.config, row.created_by
                    )
                )
    return out, bool(rows)
