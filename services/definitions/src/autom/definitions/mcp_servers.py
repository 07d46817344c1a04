"""MCP servers a workspace registers as tool sources, and the check of `mcp:<server>/<tool>`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core.audit import Change
from autom.core.auth import ANY_WORKSPACE, Principal
from autom.core.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    Violation,
)
from autom.core.mcptools import (
    MCP_SERVER_NAME,
    SECRET_REF,
    Endpoint,
    McpError,
    McpRefused,
    McpTool,
    ToolCache,
    url_problem,
)
from autom.definitions import audit, db
from autom.definitions.access import SECRET_RESOLVER, AccessService

HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
MAX_HEADERS = 20
MAX_HEADER_BYTES = 4096
MAX_URL_BYTES = 2048


def _substitute(value: str, secrets: dict[str, str | None]) -> str:
    return SECRET_REF.sub(lambda m: secrets.get(m.group(1)) or "", value)


@dataclass(frozen=True)
class ResolvedServer:
    """A server as a run reaches it: URL and headers with secrets rendered."""

    name: str
    url: str
    headers: dict[str, str]


class McpServers:
    """Registration, listing and removal of MCP servers; tool lists through a TTL cache."""

    def __init__(self, engine: AsyncEngine, access: AccessService, cache: ToolCache) -> None:
        self._engine = engine
        self._access = access
        self.cache = cache

    def _violations(self, name: str, url: str, headers: dict[str, str]) -> list[Violation]:
        out = []
        if not MCP_SERVER_NAME.match(name):
            out.append(Violation("name", f"must match {MCP_SERVER_NAME.pattern}"))
        why = url_problem(url, self.cache.policy)
        if len(url.encode()) > MAX_URL_BYTES:
            why = f"must be at most {MAX_URL_BYTES} bytes"
        if why is not None:
            out.append(Violation("url", why))
        if len(headers) > MAX_HEADERS:
            out.append(Violation("headers", f"at most {MAX_HEADERS} headers"))
        for key, value in sorted(headers.items()):
            if not HEADER_NAME.match(key):
                out.append(Violation(f"headers.{key}", "not a header name"))
            elif len(value.encode()) > MAX_HEADER_BYTES:
                out.append(Violation(f"headers.{key}", f"at most {MAX_HEADER_BYTES} bytes"))
            elif "{{" in SECRET_REF.sub("", value) or "{%" in value or "\n" in value:
                out.append(
                    Violation(
                        f"headers.{key}",
                        "the only template a header may hold is {{ secrets.NAME }}",
                    )
                )
        return out

    async def _render(self, workspace_id: str, headers: dict[str, str]) -> dict[str, str]:
        """Header values with their secret references replaced; a missing secret is refused."""
        out: dict[str, str] = {}
        missing: list[Violation] = []
        for key, value in headers.items():
            names = SECRET_REF.findall(value)
            values = {n: await self._access.secret_value(workspace_id, n) for n in set(names)}
            for n in sorted(n for n, v in values.items() if v is None):
                missing.append(Violation(f"headers.{key}", f"secret {n} is not set"))
            out[key] = _substitute(value, values)
        if missing:
            raise ValidationFailed(missing)
        return out

    async def register(
        self, caller: Principal, name: str, url: str, headers: dict[str, str]
    ) -> tuple[Row[Any], list[McpTool]]:
        """Check the server (SSRF policy, headers, its tool list) and store it."""
        violations = self._violations(name, url, headers)
        if violations:
            raise ValidationFailed(violations)
        ws = caller.workspace_id
        endpoint = Endpoint.of(url, await self._render(ws, headers))
        try:
            tools = await self.cache.tools(endpoint, fresh=True)
        except McpRefused as exc:
            raise ValidationFailed([Violation("url", str(exc))]) from exc
        except McpError as exc:
            raise FailedPrecondition(f"cannot list the server's tools: {exc}") from exc
        now = datetime.now(UTC)
        t = db.mcp_servers
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    pg_insert(t)
                    .values(
                        workspace_id=ws,
                        name=name,
                        url=url,
                        headers=headers,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_update(
                        index_elements=["workspace_id", "name"],
                        set_={"url": url, "headers": headers, "updated_at": now},
                    )
                    .returning(*t.c)
                )
            ).one()
            await audit.record(
                conn,
                caller,
                Change(
                    action="mcp_server.register",
                    target_type="mcp_server",
                    target_id=name,
                    workspace_id=ws,
                    details={"url": url, "headers": ",".join(sorted(headers))},
                ),
            )
        return row, tools

    async def servers(self, caller: Principal) -> list[Row[Any]]:
        """The workspace's servers by name."""
        t = db.mcp_servers
        async with self._engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(*t.c)
                        .where(t.c.workspace_id == caller.workspace_id)
                        .order_by(t.c.name)
                    )
                ).all()
            )

    async def delete(self, caller: Principal, name: str) -> None:
        """Remove a server."""
        t = db.mcp_servers
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.workspace_id == caller.workspace_id, t.c.name == name)
            )
            if result.rowcount == 0:
                raise NotFound("MCP server", name)
            await audit.record(
                conn,
                caller,
                Change(
                    action="mcp_server.delete",
                    target_type="mcp_server",
                    target_id=name,
                    workspace_id=caller.workspace_id,
                ),
            )

    async def _rows(self, workspace_id: str, names: set[str]) -> dict[str, Row[Any]]:
        t = db.mcp_servers
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(*t.c).where(t.c.workspace_id == workspace_id, t.c.name.in_(names))
                )
            ).all()
        return {r.name: r for r in rows}

    async def resolve(
        self, caller: Principal, workspace_id: str, names: list[str]
    ) -> tuple[list[ResolvedServer], list[str]]:
        """Servers with rendered headers for a run; only the executor's service principal may."""
        if caller.subject != SECRET_RESOLVER or caller.workspace_id != ANY_WORKSPACE:
            raise PermissionDenied("only the executor may resolve MCP servers")
        if not workspace_id:
            raise ValidationFailed([Violation("workspace_id", "required")])
        rows = await self._rows(workspace_id, set(names))
        found = []
        for row in rows.values():
            try:
                headers = await self._render(workspace_id, dict(row.headers))
            except ValidationFailed as exc:
                raise FailedPrecondition(
                    f"MCP server {row.name}: " + "; ".join(v.description for v in exc.violations)
                ) from exc
            found.append(ResolvedServer(row.name, row.url, headers))
        return found, sorted(set(names) - set(rows))

    async def check_tools(
        self, workspace_id: str, wanted: list[tuple[str, str, str]]
    ) -> list[Violation]:
        """Violations of (field path, server, tool) names against the registered servers."""
        if not wanted:
            return []
        rows = await self._rows(workspace_id, {server for _, server, _ in wanted})
        listed: dict[str, list[McpTool] | str] = {}
        out = []
        for path, server, tool in wanted:
            row = rows.get(server)
            if row is None:
                out.append(Violation(path, f"no MCP server named {server!r} is registered"))
                continue
            if server not in listed:
                try:
                    endpoint = Endpoint.of(row.url, await self._render(workspace_id, row.headers))
                    listed[server] = await self.cache.tools(endpoint)
                except (McpError, ValidationFailed) as exc:
                    listed[server] = str(exc)
            tools = listed[server]
            if isinstance(tools, str):
                out.append(
                    Violation(path, f"cannot list the tools of MCP server {server!r}: {tools}")
                )
            elif tool not in {t.name for t in tools}:
                known = ", ".join(sorted(t.name for t in tools)) or "none"
                out.append(
                    Violation(path, f"MCP server {server!r} has no tool {tool!r} (tools: {known})")
                )
        return out
