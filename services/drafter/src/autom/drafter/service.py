"""Use cases of the drafter; each owns its transaction. Model calls happen outside them."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.core.audit import Change, audit_row
from autom.core.auth import Principal
from autom.core.errors import Conflict, FailedPrecondition, NotFound, ValidationFailed, Violation
from autom.core.paging import decode_page_token, encode_page_token, page_size
from autom.drafter import db, store
from autom.drafter.clients import AutomationRef, DefinitionsClient
from autom.drafter.domain.model import FINAL, Draft, DraftStatus, Preview, Turn, Usage
from autom.drafter.drafting import Generator
from autom.drafter.errors import DraftFailed, ErrorType, UpstreamError
from autom.drafter.preview import PreviewBuilder, pretty_json

log = logging.getLogger(__name__)

MAX_TEXT = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def _text(value: str, field: str, *, required: bool, limit: int = MAX_TEXT) -> str:
    value = value.strip()
    if required and not value:
        raise ValidationFailed([Violation(field, "required")])
    if len(value) > limit:
        raise ValidationFailed([Violation(field, f"at most {limit} characters")])
    return value


def _timezone(value: str) -> str:
    zone = value.strip() or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            [Violation("timezone", f"unknown IANA time zone {zone!r}")]
        ) from None
    return zone


def _request_id(value: str) -> str | None:
    return _text(value, "request_id", required=False, limit=128) or None


def with_provenance(definition: dict[str, Any], draft_id: str) -> dict[str, Any]:
    """The definition marked as created from natural language by this draft."""
    out = dict(definition)
    metadata = dict(out.get("metadata") or {})
    metadata["created_from_nl"] = True
    metadata["draft_id"] = draft_id
    out["metadata"] = metadata
    return out


def _raise_if_failed(turn: Turn) -> None:
    if turn.status is DraftStatus.FAILED:
        raise DraftFailed(ErrorType(turn.error_type), turn.error_message or None)


def _draft_cursor(created_at: datetime, draft_id: str) -> str:
    return encode_page_token({"c": created_at.isoformat(), "i": draft_id})


def _parse_draft_cursor(token: str) -> tuple[datetime, str]:
    value = decode_page_token(token, keys=("c", "i"))
    try:
        return datetime.fromisoformat(str(value["c"])), str(value["i"])
    except ValueError:
        raise ValidationFailed([Violation("page_token", "malformed page token")]) from None


class DrafterService:
    """Draft, refine, read, approve and reject drafts for the calling principal."""

    def __init__(
        self,
        engine: AsyncEngine,
        generator: Generator,
        definitions: DefinitionsClient,
        previews: PreviewBuilder,
        on_audit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._gen = generator
        self._defs = definitions
        self._previews = previews
        self._on_audit = on_audit or (lambda: None)

    @staticmethod
    async def _audit(
        conn: AsyncConnection, caller: Principal, draft: Draft, action: str, **details: str
    ) -> None:
        """Append an audit entry to the audit outbox, in the change's transaction."""
        change = Change(
            action=action,
            target_type="draft",
            target_id=draft.id,
            workspace_id=draft.workspace_id,
            version_before=draft.latest.number if draft.latest is not None else 0,
            version_after=draft.latest.number if draft.latest is not None else 0,
            details={"status_before": draft.status.value, **details},
        )
        await conn.execute(insert(db.audit_outbox).values(audit_row("drafter", change, caller)))

    async def _preview(
        self, caller: Principal, turn: Turn, base: dict[str, Any] | None
    ) -> Preview | None:
        if turn.definition is None:
            return None
        if turn.status is not DraftStatus.PENDING:
            # An invalid draft still shows what was drafted, so the user can fix it.
            return Preview([], [], pretty_json(turn.definition), warnings=turn.notes)
        schema = await self._defs.schema(caller.token)
        preview = await self._previews.build(
            caller.token,
            turn.definition,
            base=base,
            trigger_descriptions={t.name: t.description for t in schema.triggers},
        )
        return dataclasses.replace(preview, warnings=[*turn.notes, *preview.warnings])

    async def get(self, caller: Principal, draft_id: str) -> Draft:
        """A draft of the caller's workspace with every revision."""
        if not draft_id:
            raise ValidationFailed([Violation("draft_id", "required")])
        async with self._engine.connect() as conn:
            draft = await store.load(conn, draft_id)
        if draft is None or not caller.sees(draft.workspace_id):
            raise NotFound("draft", draft_id)
        return draft

    async def draft(
        self,
        caller: Principal,
        *,
        intent: str,
        timezone: str,
        automation_id: str,
        request_id: str,
    ) -> Draft:
        """Start a draft (or a change draft) and run its first turn."""
        intent = _text(intent, "intent", required=True)
        zone = _timezone(timezone)
        rid = _request_id(request_id)
        automation_id = _text(automation_id, "automation_id", required=False, limit=128)
        if rid is not None:
            async with self._engine.connect() as conn:
                existing = await store.find_by_request(conn, caller.workspace_id, rid)
            if existing is not None:
                return await self._replay(caller, await self.get(caller, existing), 1)
        base: AutomationRef | None = None
        if automation_id:
            base = await self._defs.get_automation(caller.token, automation_id)
        base_definition = base.definition if base is not None else None
        turn = await self._gen.run(
            caller.token,
            conversation=[],
            user_message=intent,
            timezone=zone,
            base_definition=base_definition,
        )
        preview = await self._preview(caller, turn, base_definition)
        draft_id = str(uuid.uuid4())
        now = _now()
        try:
            async with self._engine.begin() as conn:
                await store.insert_draft(
                    conn,
                    draft_id=draft_id,
                    workspace_id=caller.workspace_id,
                    status=turn.status,
                    intent=intent,
                    timezone=zone,
                    request_id=rid,
                    base_automation_id=base.id if base is not None else "",
                    base_version=base.version if base is not None else 0,
                    base_definition=base_definition,
                    created_by=caller.subject,
                    now=now,
                )
                await store.insert_revision(
                    conn,
                    draft_id=draft_id,
                    number=1,
                    instruction=intent,
                    request_id=rid,
                    turn=turn,
                    preview=preview,
                    model=self._gen.model,
                    now=now,
                )
        except IntegrityError:
            # A concurrent call with the same request_id stored its draft first.
            async with self._engine.connect() as conn:
                existing = await store.find_by_request(conn, caller.workspace_id, rid or "")
            if existing is None:
                raise
            return await self.get(caller, existing)
        log.info("draft %s: revision 1 %s (%d calls)", draft_id, turn.status, turn.usage.calls)
        _raise_if_failed(turn)
        return await self.get(caller, draft_id)

    async def _replay(self, caller: Principal, draft: Draft, number: int) -> Draft:
        # A retried request returns what it made. But when its turn (revision `number`) and
        # every turn after it failed, it made nothing: try again instead of repeating the
        # failure forever. The failed turn already holds the user's words.
        rest = [r for r in draft.revisions if r.number >= number]
        if rest and all(r.status is DraftStatus.FAILED for r in rest):
            return await self._continue(
                caller, draft, instruction=rest[0].instruction, user_message=None
            )
        return draft

    async def refine(
        self, caller: Principal, *, draft_id: str, instruction: str, request_id: str
    ) -> Draft:
        """A new revision from the conversation so far plus the instruction."""
        instruction = _text(instruction, "instruction", required=True)
        rid = _request_id(request_id)
        draft = await self.get(caller, draft_id)
        if rid is not None:
            for rev in draft.revisions:
                if rev.request_id == rid:
                    return await self._replay(caller, draft, rev.number)
        self._require_open(draft)
        return await self._continue(
            caller, draft, instruction=instruction, user_message=instruction, request_id=rid
        )

    @staticmethod
    def _require_open(draft: Draft) -> None:
        if draft.status in FINAL:
            raise FailedPrecondition(
                f"draft is {draft.status.value}; start a new draft instead",
                reason=f"draft_{draft.status.value}",
            )

    async def _continue(
        self,
        caller: Principal,
        draft: Draft,
        *,
        instruction: str,
        user_message: str | None,
        request_id: str | None = None,
    ) -> Draft:
        rebase: dict[str, Any] = {}
        if draft.base_automation_id:
            # A change draft follows its automation: when it moved since the draft began, the
            # change is re-drafted onto the current version (else approval could never succeed).
            latest = await self._defs.get_automation(caller.token, draft.base_automation_id)
            if latest.version != draft.base_version:
                log.info(
                    "draft %s: rebasing from version %d onto %d",
                    draft.id,
                    draft.base_version,
                    latest.version,
                )
                if user_message is not None:
                    user_message = (
                        f"(The automation changed to version {latest.version} since this draft "
                        "began; apply the change to the current definition given above.)\n\n"
                        + user_message
                    )
                rebase = {"base_version": latest.version, "base_definition": latest.definition}
                draft = dataclasses.replace(draft, **rebase)
        turn = await self._gen.run(
            caller.token,
            conversation=draft.conversation(),
            user_message=user_message,
            timezone=draft.timezone,
            base_definition=draft.base_definition,
        )
        preview = await self._preview(caller, turn, draft.base_definition)
        now = _now()
        try:
            async with self._engine.begin() as conn:
                current = await store.load(conn, draft.id, for_update=True)
                assert current is not None
                self._require_open(current)
                if len(current.revisions) != len(draft.revisions):
                    raise Conflict("the draft changed while refining; re-read it and retry")
                number = len(current.revisions) + 1
                await store.insert_revision(
                    conn,
                    draft_id=draft.id,
                    number=number,
                    instruction=instruction,
                    request_id=request_id,
                    turn=turn,
                    preview=preview,
                    model=self._gen.model,
                    now=now,
                )
                await store.set_status(conn, draft.id, turn.status, now, **rebase)
        except IntegrityError:
            # The same request_id raced us; its revision is the answer.
            return await self.get(caller, draft.id)
        log.info("draft %s: revision %d %s", draft.id, number, turn.status)
        _raise_if_failed(turn)
        return await self.get(caller, draft.id)

    async def list(
        self, caller: Principal, *, status: DraftStatus | None, size: int, token: str
    ) -> tuple[list[Draft], str]:
        """A page of the workspace's drafts, newest first, with their revisions."""
        limit = page_size(size)
        after = _parse_draft_cursor(token) if token else None
        async with self._engine.connect() as conn:
            drafts = await store.page(
                conn,
                workspace_id=caller.workspace_id,
                status=status,
                limit=limit + 1,
                after=after,
            )
        next_token = ""
        if len(drafts) > limit:
            drafts = drafts[:limit]
            next_token = _draft_cursor(drafts[-1].created_at, drafts[-1].id)
        return drafts, next_token

    async def approve(
        self,
        caller: Principal,
        *,
        draft_id: str,
        expected_revision: int,
        edited: dict[str, Any] | None,
        request_id: str,
    ) -> Draft:
        """Create (or update) the automation as the caller; idempotent per draft."""
        _request_id(request_id)
        if expected_revision < 0:
            raise ValidationFailed([Violation("expected_revision", "must not be negative")])
        await self.get(caller, draft_id)
        # The draft row stays locked across the definitions call, so concurrent approvals
        # (from any replica) run one after the other: the second sees `approved`.
        async with self._engine.begin() as conn:
            draft = await store.load(conn, draft_id, for_update=True)
            assert draft is not None
            if draft.status is DraftStatus.APPROVED:
                return draft
            if draft.status is DraftStatus.REJECTED:
                raise FailedPrecondition(
                    "draft was rejected and cannot be approved; start a new draft",
                    reason="draft_rejected",
                )
            latest = draft.latest
            if latest is None:
                raise FailedPrecondition("draft has no revision", reason="draft_empty")
            if expected_revision and expected_revision != latest.number:
                raise Conflict(
                    f"draft is at revision {latest.number}, not {expected_revision}; re-read it"
                )
            if edited is not None:
                definition = edited
            elif latest.status is DraftStatus.PENDING and latest.definition is not None:
                definition = latest.definition
            else:
                raise FailedPrecondition(
                    f"draft is {latest.status.value}; only a pending draft can be approved as "
                    "drafted: refine it, or approve an edited definition",
                    reason="draft_not_pending",
                )
            definition = with_provenance(definition, draft.id)
            # One automation per draft, however often approval is retried.
            key = f"draft:{draft.id}"
            if draft.base_automation_id:
                try:
                    ref = await self._defs.update(
                        caller.token, key, draft.base_automation_id, draft.base_version, definition
                    )
                except UpstreamError as exc:
                    if exc.code != grpc.StatusCode.ABORTED:
                        raise
                    raise Conflict(
                        f"automation {draft.base_automation_id} changed since this draft was "
                        f"made from version {draft.base_version}; refine the draft (any "
                        "instruction, e.g. 'rebase') to re-draft the change onto the current "
                        "version, then approve"
                    ) from exc
            else:
                ref = await self._defs.create(caller.token, key, definition)
            now = _now()
            if edited is not None:
                await store.insert_revision(
                    conn,
                    draft_id=draft.id,
                    number=latest.number + 1,
                    instruction="approved with an edited definition",
                    request_id=None,
                    turn=Turn(DraftStatus.APPROVED, [], Usage(), definition=definition),
                    preview=Preview([], [], pretty_json(definition)),
                    model="",
                    now=now,
                )
            await store.set_status(
                conn,
                draft.id,
                DraftStatus.APPROVED,
                now,
                automation_id=ref.id,
                automation_version=ref.version,
            )
            await self._audit(
                conn,
                caller,
                draft,
                "draft.approve",
                automation_id=ref.id,
                automation_version=str(ref.version),
                edited=str(edited is not None).lower(),
            )
        self._on_audit()
        log.info("draft %s approved: automation %s v%d", draft_id, ref.id, ref.version)
        return await self.get(caller, draft_id)

    async def reject(
        self, caller: Principal, *, draft_id: str, reason: str, request_id: str
    ) -> Draft:
        """Mark a draft rejected; approved drafts cannot be rejected."""
        _request_id(request_id)
        reason = _text(reason, "reason", required=False, limit=2000)
        await self.get(caller, draft_id)
        async with self._engine.begin() as conn:
            current = await store.load(conn, draft_id, for_update=True)
            assert current is not None
            if current.status is DraftStatus.APPROVED:
                raise FailedPrecondition(
                    "draft is approved and cannot be rejected", reason="draft_approved"
                )
            if current.status is not DraftStatus.REJECTED:
                await store.set_status(
                    conn, draft_id, DraftStatus.REJECTED, _now(), reject_reason=reason
                )
                await self._audit(conn, caller, current, "draft.reject")
        self._on_audit()
        return await self.get(caller, draft_id)
