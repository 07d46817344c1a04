"""SQL for drafts and revisions; functions take a connection and never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from autom.core.errors import Violation
from autom.drafter import db
from autom.drafter.domain.model import Draft, DraftStatus, Preview, Revision, Turn, Usage

D, R = db.drafts, db.revisions


def _revision(row: Row[Any]) -> Revision:
    return Revision(
        number=row.number,
        instruction=row.instruction,
        status=DraftStatus(row.status),
        definition=row.definition,
        violations=[Violation(v["field"], v["description"]) for v in row.violations],
        questions=list(row.questions),
        error_type=row.error_type,
        error_message=row.error_message,
        message=row.message,
        messages=list(row.messages),
        preview=Preview.from_json(row.preview) if row.preview else None,
        usage=Usage(row.prompt_tokens, row.completion_tokens, row.cost_usd, row.calls),
        model=row.model,
        request_id=row.request_id,
        created_at=row.created_at,
    )


def _draft(row: Row[Any], revisions: list[Revision]) -> Draft:
    return Draft(
        id=row.id,
        workspace_id=row.workspace_id,
        status=DraftStatus(row.status),
        intent=row.intent,
        timezone=row.timezone,
        request_id=row.request_id,
        base_automation_id=row.base_automation_id,
        base_version=row.base_version,
        base_definition=row.base_definition,
        automation_id=row.automation_id,
        automation_version=row.automation_version,
        reject_reason=row.reject_reason,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revisions=revisions,
    )


async def load(conn: AsyncConnection, draft_id: str, *, for_update: bool = False) -> Draft | None:
    """A draft with every revision, or None."""
    query = select(*D.c).where(D.c.id == draft_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    revs = (
        await conn.execute(select(*R.c).where(R.c.draft_id == draft_id).order_by(R.c.number))
    ).all()
    return _draft(row, [_revision(r) for r in revs])


async def find_by_request(conn: AsyncConnection, workspace_id: str, request_id: str) -> str | None:
    """The id of the draft DraftAutomation created for this request_id."""
    return (
        await conn.execute(
            select(D.c.id).where(D.c.workspace_id == workspace_id, D.c.request_id == request_id)
        )
    ).scalar_one_or_none()


async def insert_draft(
    conn: AsyncConnection,
    *,
    draft_id: str,
    workspace_id: str,
    status: DraftStatus,
    intent: str,
    timezone: str,
    request_id: str | None,
    base_automation_id: str,
    base_version: int,
    base_definition: dict[str, Any] | None,
    created_by: str,
    now: datetime,
) -> None:
    """A new draft row (its first revision is inserted separately)."""
    await conn.execute(
        insert(D).values(
            id=draft_id,
            workspace_id=workspace_id,
            status=status.value,
            intent=intent,
            timezone=timezone,
            request_id=request_id,
            base_automation_id=base_automation_id,
            base_version=base_version,
            base_definition=base_definition,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
    )


async def insert_revision(
    conn: AsyncConnection,
    *,
    draft_id: str,
    number: int,
    instruction: str,
    request_id: str | None,
    turn: Turn,
    preview: Preview | None,
    model: str,
    now: datetime,
) -> None:
    """Store one turn as revision `number`."""
    await conn.execute(
        insert(R).values(
            draft_id=draft_id,
            number=number,
            request_id=request_id,
            instruction=instruction,
            status=turn.status.value,
            definition=turn.definition,
            violations=[{"field": v.field, "description": v.description} for v in turn.violations],
            questions=turn.questions,
            error_type=turn.error_type,
            error_message=turn.error_message,
            message=turn.message,
            messages=turn.messages,
            preview=preview.to_json() if preview is not None else None,
            model=model,
            prompt_tokens=turn.usage.prompt_tokens,
            completion_tokens=turn.usage.completion_tokens,
            cost_usd=turn.usage.cost_usd,
            calls=turn.usage.calls,
            created_at=now,
        )
    )


async def set_status(
    conn: AsyncConnection, draft_id: str, status: DraftStatus, now: datetime, **values: Any
) -> None:
    """Move a draft to `status` (with extra column values)."""
    await conn.execute(
        update(D).where(D.c.id == draft_id).values(status=status.value, updated_at=now, **values)
    )


async def page(
    conn: AsyncConnection,
    *,
    workspace_id: str,
    status: DraftStatus | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[Draft]:
    """Newest first, keyset-paged on (created_at, id), each with all its revisions."""
    query = select(*D.c)
    if workspace_id != "*":
        query = query.where(D.c.workspace_id == workspace_id)
    if status is not None:
        query = query.where(D.c.status == status.value)
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(D.c.created_at < created, and_(D.c.created_at == created, D.c.id < last_id))
        )
    rows = (
        await conn.execute(query.order_by(D.c.created_at.desc(), D.c.id.desc()).limit(limit))
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    by_draft: dict[str, list[Revision]] = {i: [] for i in ids}
    revs = (
        await conn.execute(
            select(*R.c).where(R.c.draft_id.in_(ids)).order_by(R.c.draft_id, R.c.number)
        )
    ).all()
    for r in revs:
        by_draft[r.draft_id].append(_revision(r))
    return [_draft(r, by_draft[r.id]) for r in rows]
