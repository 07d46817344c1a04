"""The web console: server-rendered pages over the public gRPC API, as the signed-in user.

It owns no tables and decides nothing: every read and every change is an RPC made with the
user's own token, so the services authorize the console exactly as any other client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import grpc
import jinja2
from cryptography.fernet import Fernet
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from markupsafe import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from autom.api.definitions.v1 import audit_pb2, definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.drafter.v1 import drafter_pb2
from autom.api.drafter.v1 import drafter_service_pb2 as drpb
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.gateway.console import text
from autom.gateway.console.api import Api, ApiError
from autom.gateway.console.forms import FormError, input_fields, inputs_from_form, read_form
from autom.gateway.console.session import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    MAX_AGE_SECONDS,
    Session,
    SessionCodec,
    Workspace,
)

log = logging.getLogger(__name__)

PREFIX = "/ui"
_HERE = Path(__file__).resolve().parent
TERMINAL_RUN = {
    executor_pb2.RUN_STATUS_SUCCEEDED,
    executor_pb2.RUN_STATUS_FAILED,
    executor_pb2.RUN_STATUS_CANCELLED,
    executor_pb2.RUN_STATUS_TIMED_OUT,
    executor_pb2.RUN_STATUS_SKIPPED,
}
AUTOMATION_STATUSES: dict[str, Any] = {
    "active": definitions_pb2.AUTOMATION_STATUS_ACTIVE,
    "paused": definitions_pb2.AUTOMATION_STATUS_PAUSED,
    "archived": definitions_pb2.AUTOMATION_STATUS_ARCHIVED,
}
RUN_STATUSES: dict[str, Any] = {
    text.label(v.name, "RUN_STATUS_"): v.number
    for v in executor_pb2.RunStatus.DESCRIPTOR.values
    if v.number
}
ROLES: dict[str, Any] = {
    "owner": definitions_pb2.ROLE_OWNER,
    "editor": definitions_pb2.ROLE_EDITOR,
    "viewer": definitions_pb2.ROLE_VIEWER,
}
# Pages hold user data (a new token, secrets' names): never framed, cached or sniffed.
_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_STATIC_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"max-age=3600")]
# The kinds of resource the audit log records (ListAuditEventsRequest.target_type).
AUDIT_TARGETS = (
    "automation", "run", "draft", "schedule", "member", "token", "secret", "mcp_server",
    "workspace", "deployment",
)  # fmt: skip
AUDIT_PAGE_SIZE = 50
EXAMPLES_DIR_NAMES = ("heartbeat.yaml", "weekday-digest.yaml", "guarded-flow.yaml")


class Page(Exception):
    """Stop handling and answer this response (an error page or a redirect)."""

    def __init__(self, response: Response) -> None:
        super().__init__("page")
        self.response = response


class Ctx:
    """One request's session, API client and template helpers."""

    def __init__(self, console: Console, request: Request, session: Session) -> None:
        self.console = console
        self.request = request
        self.session = session
        self.tz = text.zone(session.timezone)
        ws = session.workspace
        self.api = Api(console.channel_for, ws.token if ws else "", console.timeout)

    @property
    def can_edit(self) -> bool:
        """Whether to show controls that change things (the services decide regardless)."""
        ws = self.session.workspace
        return ws is not None and ws.role in ("owner", "editor")

    @property
    def is_owner(self) -> bool:
        """Whether to show the owner-only settings forms."""
        ws = self.session.workspace
        return ws is not None and ws.role == "owner"


Handler = Callable[[Ctx], Awaitable[Response]]


class Console:
    """The console's ASGI app, mounted by the gateway at `/` and `/ui`."""

    def __init__(
        self,
        channel_for: Callable[[str], grpc.aio.Channel],
        *,
        session_key: str | None,
        timeout: float,
        draft_timeout: float,
        examples_dir: Path | None = None,
    ) -> None:
        self.channel_for = channel_for
        self.timeout = timeout
        # Drafting is model calls and repair rounds: it may take minutes, not seconds.
        self.draft_timeout = draft_timeout
        # Without a configured key sessions live as long as this process (sign in again
        # after a restart); replicas behind one address need AUTOM_CONSOLE_SESSION_KEY.
        self.codec = SessionCodec(session_key or Fernet.generate_key())
        self.examples_dir = examples_dir
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals.update(
            prefix=PREFIX,
            fmt_time=text.fmt_time,
            label=text.label,
            pretty=text.pretty_json,
            duration=text.duration,
            versions=text.versions,
            AUDIT_TARGETS=AUDIT_TARGETS,
            AUTOMATION_STATUSES=AUTOMATION_STATUSES,
            RUN_STATUSES=RUN_STATUSES,
            ROLES=ROLES,
        )
        p = PREFIX
        self.app = Starlette(
            routes=[
                Route("/", self._root),
                Route(p, self._root),
                Route(f"{p}/", self._root),
                Mount(f"{p}/static", StaticFiles(directory=_HERE / "static"), name="static"),
                Route(f"{p}/login", self._login_form, methods=["GET"]),
                Route(f"{p}/login", self._login, methods=["POST"]),
                Route(f"{p}/logout", self._post(self.logout), methods=["POST"]),
                Route(f"{p}/workspace", self._post(self.switch_workspace), methods=["POST"]),
                Route(f"{p}/automations", self._get(self.automations)),
                Route(f"{p}/automations/new", self._get(self.new_automation)),
                Route(f"{p}/automations/new", self._post(self.create), methods=["POST"]),
                Route(
                    f"{p}/automations/example", self._post(self.create_example), methods=["POST"]
                ),
                Route(f"{p}/validate", self._post(self.validate), methods=["POST"]),
                Route(f"{p}/automations/{{aid}}", self._get(self.automation)),
                Route(f"{p}/automations/{{aid}}/diff", self._get(self.diff)),
                Route(f"{p}/automations/{{aid}}/save", self._post(self.save), methods=["POST"]),
                Route(
                    f"{p}/automations/{{aid}}/{{verb:str}}",
                    self._post(self.lifecycle),
                    methods=["POST"],
                ),
                Route(f"{p}/runs", self._get(self.runs)),
                Route(f"{p}/runs/{{rid}}", self._get(self.run)),
                Route(f"{p}/runs/{{rid}}/timeline", self._get(self.timeline)),
                Route(f"{p}/runs/{{rid}}/events", self._get(self.run_events)),
                Route(
                    f"{p}/runs/{{rid}}/{{verb:str}}", self._post(self.run_action), methods=["POST"]
                ),
                Route(f"{p}/drafts", self._get(self.drafts)),
                Route(f"{p}/drafts", self._post(self.new_draft), methods=["POST"]),
                Route(f"{p}/drafts/{{did}}", self._get(self.draft)),
                Route(
                    f"{p}/drafts/{{did}}/{{verb:str}}",
                    self._post(self.draft_action),
                    methods=["POST"],
                ),
                Route(f"{p}/settings", self._get(self.settings)),
                Route(f"{p}/audit", self._get(self.audit)),
                Route(
                    f"{p}/settings/{{verb:str}}", self._post(self.settings_action), methods=["POST"]
                ),
            ],
        )
        self.app.add_exception_handler(404, self._not_found)
        self.app.add_exception_handler(405, self._not_allowed)

    @staticmethod
    def owns(path: str) -> bool:
        """Whether a request path is the console's (`/`, `/ui` and below)."""
        return path in ("/", PREFIX) or path.startswith(PREFIX + "/")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        static = str(scope.get("path", "")).startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = _STATIC_HEADERS if static else _HEADERS
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # --- plumbing -------------------------------------------------------------------------

    def render(
        self, ctx: Ctx | None, template: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """A template as a page, with the session's navigation and messages."""
        session = ctx.session if ctx else None
        html = self.env.get_template(template).render(
            ctx=ctx,
            session=session,
            flash=session.take_flash() if session else [],
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if session is not None and ctx is not None:
            self.set_session(ctx.request, response, session)
        return response

    def set_session(self, request: Request, response: Response, session: Session) -> None:
        """Write the session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS."""
        response.set_cookie(
            COOKIE,
            self.codec.dumps(session),
            max_age=MAX_AGE_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def redirect(self, ctx: Ctx, url: str) -> Response:
        """303 to `url`, keeping the session (and its messages)."""
        response = RedirectResponse(url, status_code=303)
        self.set_session(ctx.request, response, ctx.session)
        return response

    def error_page(self, ctx: Ctx | None, status: int, title: str, message: str) -> HTMLResponse:
        """401/403/404/… as a page that says what happened and what to do."""
        return self.render(
            ctx, "error.html", status=status, code=status, title=title, message=message
        )

    def api_error_page(self, ctx: Ctx, exc: ApiError) -> Response:
        """An RPC failure as a page; an expired token goes back to sign-in."""
        if exc.http == 401:
            ctx.session.drop_current()
            ctx.session.say("error", f"Signed out: {exc.message}")
            return self.redirect(ctx, f"{PREFIX}/login")
        titles = {403: "Not allowed", 404: "Not found"}
        return self.error_page(ctx, exc.http, titles.get(exc.http, "Request failed"), exc.message)

    def _ctx(self, request: Request) -> Ctx:
        return Ctx(self, request, self.codec.loads(request.cookies.get(COOKIE)))

    def _get(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ctx = self._ctx(request)
            if not ctx.session.signed_in:
                return RedirectResponse(f"{PREFIX}/login", status_code=303)
            return await self._guard(ctx, handler)

        return endpoint

    def _post(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ctx = self._ctx(request)
            if not ctx.session.signed_in:
                return self.error_page(None, 401, "Signed out", "Sign in to continue.")
            try:
                form = await read_form(request)
            except FormError as exc:
                return self.error_page(ctx, 400, "Bad request", str(exc))
            if not ctx.session.check_csrf(form.get("csrf") or request.headers.get("x-csrf-token")):
                log.warning("console: refused a form without a valid CSRF token")
                return self.error_page(
                    ctx,
                    403,
                    "Request refused",
                    "This form has expired or did not come from the console. Reload the page "
                    "and try again.",
                )
            request.state.form = form
            return await self._guard(ctx, handler)

        return endpoint

    async def _guard(self, ctx: Ctx, handler: Handler) -> Response:
        try:
            return await handler(ctx)
        except Page as page:
            return page.response
        except ApiError as exc:
            return self.api_error_page(ctx, exc)
        except FormError as exc:
            ctx.session.say("error", str(exc))
            # Back to the page the form was on, never to another site.
            back = urlparse(ctx.request.headers.get("referer") or "").path
            return self.redirect(ctx, back if back.startswith(PREFIX + "/") else f"{PREFIX}/")

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        ctx = self._ctx(request)
        return self.error_page(
            ctx if ctx.session.signed_in else None,
            404,
            "Not found",
            f"There is no page at {request.url.path}.",
        )

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.error_page(None, 405, "Not allowed", f"{request.method} is not allowed here.")

    @staticmethod
    def form(ctx: Ctx) -> dict[str, str]:
        """The POSTed form (read and CSRF-checked by `_post`)."""
        form: dict[str, str] = ctx.request.state.form
        return form

    # --- sign-in --------------------------------------------------------------------------

    async def _root(self, request: Request) -> Response:
        if request.url.path != f"{PREFIX}/":
            # The cookie's path is /ui: only /ui/ can tell whether the user is signed in.
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        ctx = self._ctx(request)
        target = "automations" if ctx.session.signed_in else "login"
        return RedirectResponse(f"{PREFIX}/{target}", status_code=303)

    async def _login_form(self, request: Request) -> Response:
        session = self.codec.loads(request.cookies.get(COOKIE))
        csrf = secrets.token_urlsafe(24)
        html = self.env.get_template("login.html").render(
            ctx=None, session=None, flash=session.take_flash(), csrf=csrf, error=None
        )
        response = HTMLResponse(html)
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            path=f"{PREFIX}/login",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def _login(self, request: Request) -> Response:
        """Double-submit CSRF (no session yet), then WhoAmI proves the token."""
        try:
            form = await read_form(request)
        except FormError as exc:
            return self.error_page(None, 400, "Bad request", str(exc))
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "")):
            return self.error_page(
                None, 403, "Request refused", "The sign-in form expired. Reload it and try again."
            )
        token = form.get("token", "").strip()
        session = self.codec.loads(request.cookies.get(COOKIE))
        error = None
        if not token:
            error = "Paste an API token."
        else:
            try:
                who = await Api(self.channel_for, token, self.timeout).call(
                    "definitions", "WhoAmI", dpb.WhoAmIRequest()
                )
            except ApiError as exc:
                error = f"That token was refused: {exc.message}"
        if error is not None:
            html = self.env.get_template("login.html").render(
                ctx=None, session=None, flash=[], csrf=form.get("csrf", ""), error=error
            )
            return HTMLResponse(html, status_code=401)
        session.add(
            Workspace(
                who.workspace_id,
                token,
                who.principal,
                text.label(definitions_pb2.Role.Name(who.role), "ROLE_"),
            )
        )
        session.timezone = form.get("timezone") or session.timezone
        log.info("console: %s signed in to workspace %s", who.principal, who.workspace_id)
        response = RedirectResponse(f"{PREFIX}/automations", status_code=303)
        self.set_session(request, response, session)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
        return response

    async def logout(self, ctx: Ctx) -> Response:
        """Forget every token of this browser."""
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    async def switch_workspace(self, ctx: Ctx) -> Response:
        """Make another signed-in workspace current."""
        wanted = self.form(ctx).get("workspace", "")
        if any(w.workspace_id == wanted for w in ctx.session.workspaces):
            ctx.session.current = wanted
        return self.redirect(ctx, f"{PREFIX}/automations")

    # --- automations ----------------------------------------------------------------------

    async def automations(self, ctx: Ctx) -> Response:
        """List with search, status filter, next fire and last run."""
        q = ctx.request.query_params.get("q", "").strip()
        status = ctx.request.query_params.get("status", "")
        listed = await ctx.api.call(
            "definitions",
            "ListAutomations",
            dpb.ListAutomationsRequest(
                # A search reads the most a page holds: it matches anywhere in the name.
                page_size=500 if q else 100,
                status=AUTOMATION_STATUSES.get(status, 0),
                page_token=ctx.request.query_params.get("page_token", ""),
            ),
        )
        rows = (
            [a for a in listed.automations if q.lower() in a.name.lower()]
            if q
            else list(listed.automations)
        )
        schedules = await ctx.api.call(
            "scheduler", "ListSchedules", spb.ListSchedulesRequest(page_size=500)
        )
        next_fire: dict[str, Any] = {}
        for s in schedules.schedules:
            if s.enabled and s.next_fire_time.seconds:
                best = next_fire.get(s.automation_id)
                if best is None or s.next_fire_time.seconds < best.seconds:
                    next_fire[s.automation_id] = s.next_fire_time
        last_runs = await asyncio.gather(
            *(
                ctx.api.call(
                    "executor", "ListRuns", epb.ListRunsRequest(automation_id=a.id, page_size=1)
                )
                for a in rows
            )
        )
        last = {a.id: (r.runs[0] if r.runs else None) for a, r in zip(rows, last_runs, strict=True)}
        examples = self._examples() if not rows and not q and not status else []
        return self.render(
            ctx,
            "automations.html",
            automations=rows,
            next_fire=next_fire,
            last=last,
            q=q,
            status_filter=status,
            examples=examples,
            next_page=listed.next_page_token,
        )

    def _examples(self) -> list[str]:
        if self.examples_dir is None:
            return []
        return [n for n in EXAMPLES_DIR_NAMES if (self.examples_dir / n).is_file()]

    async def new_automation(self, ctx: Ctx) -> Response:
        """The editor with a starting definition."""
        starter = (
            "name: my-automation\ndescription: What it does\ntriggers:\n  - type: manual\n"
            "plan:\n  - id: hello\n    action: log\n    params:\n      message: hello\n"
        )
        return self.render(ctx, "new.html", yaml_text=starter, violations=[])

    async def _validated(self, ctx: Ctx, yaml_text: str) -> tuple[Any, list[text.Violation]]:
        definition, violations = text.parse_definition(yaml_text)
        if definition is None:
            return None, violations
        checked = await ctx.api.call(
            "definitions",
            "ValidateDefinition",
            dpb.ValidateDefinitionRequest(definition=definition),
        )
        if not checked.valid:
            found = [(v.field, v.description) for v in checked.violations]
            return None, text.with_lines(yaml_text, found)
        return definition, []

    async def validate(self, ctx: Ctx) -> Response:
        """The editor's on-the-fly check (an htmx fragment)."""
        yaml_text = self.form(ctx).get("yaml", "")
        _, violations = await self._validated(ctx, yaml_text)
        return self.render(ctx, "_violations.html", violations=violations, checked=True)

    async def create(self, ctx: Ctx) -> Response:
        """Create from YAML; violations shown next to their lines when it is refused."""
        yaml_text = self.form(ctx).get("yaml", "")
        definition, violations = await self._validated(ctx, yaml_text)
        if definition is None:
            return self.render(
                ctx, "new.html", status=400, yaml_text=yaml_text, violations=violations
            )
        try:
            created = await ctx.api.call(
                "definitions",
                "CreateAutomation",
                dpb.CreateAutomationRequest(request_id=str(uuid.uuid4()), definition=definition),
            )
        except ApiError as exc:
            if exc.http not in (400, 409):
                raise
            violations = text.with_lines(yaml_text, exc.violations) or [
                ("definition", exc.message, None)
            ]
            return self.render(
                ctx, "new.html", status=exc.http, yaml_text=yaml_text, violations=violations
            )
        ctx.session.say("ok", f"Created {created.automation.name} (version 1).")
        return self.redirect(ctx, f"{PREFIX}/automations/{created.automation.id}")

    async def create_example(self, ctx: Ctx) -> Response:
        """One click from the empty state: an example automation, created paused."""
        name = self.form(ctx).get("example", "")
        if self.examples_dir is None or name not in self._examples():
            raise Page(self.error_page(ctx, 404, "Not found", f"No example {name!r}."))
        yaml_text = (self.examples_dir / name).read_text(encoding="utf-8")
        definition, violations = text.parse_definition(yaml_text)
        if definition is None:
            raise Page(self.error_page(ctx, 500, "Example unreadable", violations[0][1]))
        created = await ctx.api.call(
            "definitions",
            "CreateAutomation",
            dpb.CreateAutomationRequest(
                request_id=str(uuid.uuid4()), definition=definition, paused=True
            ),
        )
        ctx.session.say(
            "ok",
            f"Created {created.automation.name} from the examples, paused: "
            "resume it when it suits you.",
        )
        return self.redirect(ctx, f"{PREFIX}/automations/{created.automation.id}")

    async def _automation(self, ctx: Ctx, aid: str) -> Any:
        got = await ctx.api.call(
            "definitions", "GetAutomation", dpb.GetAutomationRequest(automation_id=aid)
        )
        return got.automation

    async def automation(self, ctx: Ctx) -> Response:
        """Detail: editor, lifecycle, Run now, schedule, versions and recent runs."""
        return await self._automation_page(ctx, ctx.request.path_params["aid"])

    async def _automation_page(
        self,
        ctx: Ctx,
        aid: str,
        yaml_text: str | None = None,
        violations: list[text.Violation] | None = None,
        status: int = 200,
    ) -> Response:
        automation = await self._automation(ctx, aid)
        versions, runs, schedules = await asyncio.gather(
            ctx.api.call(
                "definitions",
                "ListAutomationVersions",
                dpb.ListAutomationVersionsRequest(automation_id=aid, page_size=50),
            ),
            ctx.api.call(
                "executor", "ListRuns", epb.ListRunsRequest(automation_id=aid, page_size=10)
            ),
            ctx.api.call(
                "scheduler",
                "ListSchedules",
                spb.ListSchedulesRequest(automation_id=aid, page_size=20),
            ),
        )
        described = await asyncio.gather(
            *(
                ctx.api.call(
                    "scheduler",
                    "DescribeSchedule",
                    spb.DescribeScheduleRequest(schedule_id=s.id, next_count=10, recent_count=10),
                )
                for s in schedules.schedules
            )
        )
        schema = json_format.MessageToDict(automation.definition.inputs.schema)
        return self.render(
            ctx,
            "automation.html",
            status=status,
            a=automation,
            yaml_text=yaml_text
            if yaml_text is not None
            else text.definition_to_yaml(automation.definition),
            violations=violations or [],
            versions=versions.versions,
            runs=runs.runs,
            schedules=[self._schedule_view(ctx, d) for d in described],
            fields=input_fields(schema),
        )

    def _schedule_view(self, ctx: Ctx, described: Any) -> dict[str, Any]:
        """Next fires in the user's zone with DST changes marked, and recent fires with lag."""
        nexts: list[dict[str, Any]] = []
        previous_offset: dt.timedelta | None = None
        for ts in described.next_fire_times:
            when = text.local_time(ts, ctx.tz)
            offset = when.utcoffset() if when else None
            nexts.append(
                {
                    "time": when.strftime("%a %Y-%m-%d %H:%M %Z") if when else "—",
                    "dst_change": previous_offset is not None and offset != previous_offset,
                }
            )
            previous_offset = offset
        recent = []
        for fire in described.recent_fires:
            lag = ""
            if fire.fired_time.seconds and fire.scheduled_for.seconds:
                seconds = fire.fired_time.ToDatetime() - fire.scheduled_for.ToDatetime()
                lag = f"{seconds.total_seconds():.1f}s"
            recent.append({"fire": fire, "lag": lag})
        return {"schedule": described.schedule, "next": nexts, "recent": recent}

    async def diff(self, ctx: Ctx) -> Response:
        """A unified diff between two versions (`?a=1&b=2`)."""
        aid = ctx.request.path_params["aid"]
        try:
            a = int(ctx.request.query_params.get("a", "0"))
            b = int(ctx.request.query_params.get("b", "0"))
        except ValueError as exc:
            raise Page(self.error_page(ctx, 400, "Bad request", "versions are numbers")) from exc
        old, new = await asyncio.gather(
            ctx.api.call(
                "definitions",
                "GetAutomation",
                dpb.GetAutomationRequest(automation_id=aid, version=a),
            ),
            ctx.api.call(
                "definitions",
                "GetAutomation",
                dpb.GetAutomationRequest(automation_id=aid, version=b),
            ),
        )
        lines = text.unified_diff(
            text.definition_to_yaml(old.automation.definition),
            text.definition_to_yaml(new.automation.definition),
            f"version {a}",
            f"version {b}",
        )
        return self.render(ctx, "diff.html", a=new.automation, va=a, vb=b, lines=lines)

    async def save(self, ctx: Ctx) -> Response:
        """Save the edited YAML as a new version (refused when someone saved in between)."""
        aid = ctx.request.path_params["aid"]
        form = self.form(ctx)
        yaml_text = form.get("yaml", "")
        definition, violations = await self._validated(ctx, yaml_text)
        error = None
        if definition is not None:
            try:
                saved = await ctx.api.call(
                    "definitions",
                    "UpdateAutomation",
                    dpb.UpdateAutomationRequest(
                        request_id=str(uuid.uuid4()),
                        automation_id=aid,
                        version=int(form.get("version", "0") or 0),
                        definition=definition,
                    ),
                )
            except ApiError as exc:
                if exc.http not in (400, 409):
                    raise
                violations = text.with_lines(yaml_text, exc.violations)
                error = exc.message
            else:
                ctx.session.say("ok", f"Saved version {saved.automation.version}.")
                return self.redirect(ctx, f"{PREFIX}/automations/{aid}")
        ctx.session.say("error", error or "Not saved: fix the errors below.")
        # The user's text and its errors, not the stored definition.
        return await self._automation_page(ctx, aid, yaml_text, violations, status=400)

    async def lifecycle(self, ctx: Ctx) -> Response:
        """pause (with note) / resume / archive / run now / trigger a schedule / backfill."""
        aid = ctx.request.path_params["aid"]
        verb = ctx.request.path_params["verb"]
        form = self.form(ctx)
        rid = str(uuid.uuid4())
        if verb == "pause":
            await ctx.api.call(
                "definitions",
                "PauseAutomation",
                dpb.PauseAutomationRequest(
                    request_id=rid, automation_id=aid, note=form.get("note", "")
                ),
            )
            ctx.session.say("ok", "Paused: no schedule fires until you resume it.")
        elif verb == "resume":
            await ctx.api.call(
                "definitions",
                "ResumeAutomation",
                dpb.ResumeAutomationRequest(request_id=rid, automation_id=aid),
            )
            ctx.session.say("ok", "Resumed.")
        elif verb == "archive":
            await ctx.api.call(
                "definitions",
                "ArchiveAutomation",
                dpb.ArchiveAutomationRequest(request_id=rid, automation_id=aid),
            )
            ctx.session.say("ok", "Archived.")
        elif verb == "run":
            automation = await self._automation(ctx, aid)
            schema = json_format.MessageToDict(automation.definition.inputs.schema)
            inputs = struct_pb2.Struct()
            inputs.update(inputs_from_form(input_fields(schema), form))
            try:
                started = await ctx.api.call(
                    "executor",
                    "StartRun",
                    epb.StartRunRequest(request_id=rid, automation_id=aid, inputs=inputs),
                )
            except ApiError as exc:
                if exc.http != 400:
                    raise
                ctx.session.say("error", exc.describe())
                return self.redirect(ctx, f"{PREFIX}/automations/{aid}")
            return self.redirect(ctx, f"{PREFIX}/runs/{started.run.id}")
        elif verb == "trigger":
            fired = await ctx.api.call(
                "scheduler",
                "TriggerNow",
                spb.TriggerNowRequest(request_id=rid, schedule_id=form.get("schedule_id", "")),
            )
            ctx.session.say("ok", f"Fired now (fire {fired.fire.fire_id}).")
        elif verb == "backfill":
            start, end = (
                struct_time(form.get("start", ""), ctx.tz),
                struct_time(form.get("end", ""), ctx.tz),
            )
            done = await ctx.api.call(
                "scheduler",
                "Backfill",
                spb.BackfillRequest(
                    request_id=rid,
                    schedule_id=form.get("schedule_id", ""),
                    start_time=start,
                    end_time=end,
                ),
            )
            ctx.session.say(
                "ok",
                f"Backfill: {done.fires_created} fires created, "
                f"{done.already_fired} already fired.",
            )
        else:
            raise Page(self.error_page(ctx, 404, "Not found", f"No action {verb!r}."))
        return self.redirect(ctx, f"{PREFIX}/automations/{aid}")

    # --- runs -----------------------------------------------------------------------------

    async def runs(self, ctx: Ctx) -> Response:
        """Runs with filters (automation, status, created since) and paging."""
        params = ctx.request.query_params
        request = epb.ListRunsRequest(
            automation_id=params.get("automation", ""),
            status=RUN_STATUSES.get(params.get("status", ""), 0),
            page_size=25,
            page_token=params.get("page_token", ""),
        )
        if params.get("since"):
            request.created_after.CopyFrom(struct_time(params["since"], ctx.tz))
        if params.get("until"):
            request.created_before.CopyFrom(struct_time(params["until"], ctx.tz))
        listed = await ctx.api.call("executor", "ListRuns", request)
        names = await self._names(ctx)
        next_url = next_page(f"{PREFIX}/runs", params, listed.next_page_token)
        return self.render(
            ctx, "runs.html", runs=listed.runs, names=names, params=params, next_url=next_url
        )

    async def _names(self, ctx: Ctx) -> dict[str, str]:
        listed = await ctx.api.call(
            "definitions", "ListAutomations", dpb.ListAutomationsRequest(page_size=200)
        )
        return {a.id: a.name for a in listed.automations}

    async def _get_run(self, ctx: Ctx, rid: str) -> Any:
        got = await ctx.api.call("executor", "GetRun", epb.GetRunRequest(run_id=rid))
        return got.run

    async def run(self, ctx: Ctx) -> Response:
        """Run detail; the timeline follows WatchRun while the run is not finished."""
        run = await self._get_run(ctx, ctx.request.path_params["rid"])
        names = await self._names(ctx)
        return self.render(
            ctx,
            "run.html",
            run=run,
            name=names.get(run.automation_id, ""),
            live=run.status not in TERMINAL_RUN,
        )

    async def timeline(self, ctx: Ctx) -> Response:
        """The timeline fragment (what the stream pushes, also for a plain reload)."""
        run = await self._get_run(ctx, ctx.request.path_params["rid"])
        return self.render(ctx, "_timeline.html", run=run)

    async def run_events(self, ctx: Ctx) -> Response:
        """Server-sent events: the rendered timeline after each WatchRun event, then `done`."""
        rid = ctx.request.path_params["rid"]
        run = await self._get_run(ctx, rid)  # 404/403 as a status before the stream starts
        template = self.env.get_template("_timeline.html")

        def event(name: str, html: str) -> bytes:
            data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
            return f"event: {name}\n{data}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            current = run
            yield event("timeline", template.render(run=current, ctx=ctx))
            try:
                if current.status not in TERMINAL_RUN:
                    async for _ in ctx.api.stream(
                        "executor", "WatchRun", epb.WatchRunRequest(run_id=rid), timeout=3600.0
                    ):
                        # The stored record is what the page shows: an event's snapshot may
                        # lead the step events still to come.
                        current = await self._get_run(ctx, rid)
                        yield event("timeline", template.render(run=current, ctx=ctx))
                    current = await self._get_run(ctx, rid)
                    yield event("timeline", template.render(run=current, ctx=ctx))
            except ApiError as exc:
                yield event("failed", f"<p class='error'>{escape(exc.message)}</p>")
            yield event("done", "terminal" if current.status in TERMINAL_RUN else "ended")

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def run_action(self, ctx: Ctx) -> Response:
        """cancel or retry."""
        rid = ctx.request.path_params["rid"]
        verb = ctx.request.path_params["verb"]
        request_id = str(uuid.uuid4())
        if verb == "cancel":
            await ctx.api.call(
                "executor",
                "CancelRun",
                epb.CancelRunRequest(
                    request_id=request_id,
                    run_id=rid,
                    reason=self.form(ctx).get("reason", "") or "cancelled from the console",
                ),
            )
            ctx.session.say("ok", "Cancellation requested.")
            return self.redirect(ctx, f"{PREFIX}/runs/{rid}")
        if verb == "retry":
            retried = await ctx.api.call(
                "executor", "RetryRun", epb.RetryRunRequest(request_id=request_id, run_id=rid)
            )
            ctx.session.say("ok", "Retry started.")
            return self.redirect(ctx, f"{PREFIX}/runs/{retried.run.id}")
        raise Page(self.error_page(ctx, 404, "Not found", f"No action {verb!r}."))

    # --- drafts ---------------------------------------------------------------------------

    async def drafts(self, ctx: Ctx) -> Response:
        """Start a draft from a sentence; the recent drafts."""
        listed = await ctx.api.call("drafter", "ListDrafts", drpb.ListDraftsRequest(page_size=25))
        return self.render(ctx, "drafts.html", drafts=listed.drafts)

    async def new_draft(self, ctx: Ctx) -> Response:
        """DraftAutomation from the intent (and, for a change, the automation it edits)."""
        form = self.form(ctx)
        intent = form.get("intent", "").strip()
        if not intent:
            ctx.session.say("error", "Describe what the automation should do.")
            return self.redirect(ctx, f"{PREFIX}/drafts")
        drafted = await ctx.api.call(
            "drafter",
            "DraftAutomation",
            drpb.DraftAutomationRequest(
                request_id=str(uuid.uuid4()),
                intent=intent,
                timezone=ctx.session.timezone,
                automation_id=form.get("automation_id", ""),
            ),
            timeout=self.draft_timeout,
        )
        return self.redirect(ctx, f"{PREFIX}/drafts/{drafted.draft.id}")

    async def draft(self, ctx: Ctx) -> Response:
        """The conversation, and the approval card when a definition is ready."""
        got = await ctx.api.call(
            "drafter", "GetDraft", drpb.GetDraftRequest(draft_id=ctx.request.path_params["did"])
        )
        draft = got.draft
        last = draft.revisions[-1] if draft.revisions else None
        previews = []
        if last is not None:
            for t in last.preview.triggers:
                previews.append(
                    {
                        "description": t.description,
                        "fires": [text.fmt_time(ts, ctx.tz) for ts in t.next_fire_times],
                    }
                )
        definition_yaml = (
            text.definition_to_yaml(last.definition)
            if last is not None and last.HasField("definition")
            else ""
        )
        change: list[str] = []
        if definition_yaml and draft.base_automation_id:
            # A change draft: what approving it changes in the version it started from.
            base = await ctx.api.call(
                "definitions",
                "GetAutomation",
                dpb.GetAutomationRequest(
                    automation_id=draft.base_automation_id, version=draft.base_version
                ),
            )
            change = text.unified_diff(
                text.definition_to_yaml(base.automation.definition),
                definition_yaml,
                f"version {draft.base_version}",
                "this draft",
            )
        return self.render(
            ctx,
            "draft.html",
            draft=draft,
            last=last,
            previews=previews,
            definition_yaml=definition_yaml,
            change=change,
            dstatus=text.label(drafter_pb2.DraftStatus.Name(draft.status), "DRAFT_STATUS_"),
        )

    async def draft_action(self, ctx: Ctx) -> Response:
        """refine (answer / change), approve, reject."""
        did = ctx.request.path_params["did"]
        verb = ctx.request.path_params["verb"]
        form = self.form(ctx)
        rid = str(uuid.uuid4())
        if verb == "refine":
            instruction = form.get("instruction", "").strip()
            if not instruction:
                ctx.session.say("error", "Write an answer or a change first.")
            else:
                await ctx.api.call(
                    "drafter",
                    "RefineDraft",
                    drpb.RefineDraftRequest(request_id=rid, draft_id=did, instruction=instruction),
                    timeout=self.draft_timeout,
                )
        elif verb == "approve":
            approved = await ctx.api.call(
                "drafter",
                "ApproveDraft",
                drpb.ApproveDraftRequest(
                    request_id=rid,
                    draft_id=did,
                    expected_revision=int(form.get("revision", "0") or 0),
                ),
            )
            ctx.session.say("ok", f"Approved: version {approved.automation_version} saved.")
            return self.redirect(ctx, f"{PREFIX}/automations/{approved.automation_id}")
        elif verb == "reject":
            await ctx.api.call(
                "drafter",
                "RejectDraft",
                drpb.RejectDraftRequest(
                    request_id=rid, draft_id=did, reason=form.get("reason", "")
                ),
            )
            ctx.session.say("ok", "Rejected.")
        else:
            raise Page(self.error_page(ctx, 404, "Not found", f"No action {verb!r}."))
        return self.redirect(ctx, f"{PREFIX}/drafts/{did}")

    # --- settings -------------------------------------------------------------------------

    async def settings(self, ctx: Ctx, new_token: Any = None) -> Response:
        """Secrets (names only), members and roles, API tokens."""
        results = await asyncio.gather(
            ctx.api.call("definitions", "ListSecrets", dpb.ListSecretsRequest()),
            ctx.api.call("definitions", "ListMembers", dpb.ListMembersRequest()),
            ctx.api.call("definitions", "ListApiTokens", dpb.ListApiTokensRequest()),
            return_exceptions=True,
        )
        # A role that may not list something still sees the rest of the page.
        denied = [r.message for r in results if isinstance(r, ApiError) and r.http == 403]
        for r in results:
            if isinstance(r, BaseException) and not (isinstance(r, ApiError) and r.http == 403):
                raise r
        secrets_, members, tokens = (None if isinstance(r, BaseException) else r for r in results)
        return self.render(
            ctx,
            "settings.html",
            secrets=secrets_,
            members=members,
            tokens=tokens,
            denied=denied,
            new_token=new_token,
            role_name=lambda r: text.label(definitions_pb2.Role.Name(r), "ROLE_"),
        )

    async def settings_action(self, ctx: Ctx) -> Response:
        """set-secret, delete-secret, set-member, remove-member, create-token, revoke-token."""
        verb = ctx.request.path_params["verb"]
        form = self.form(ctx)
        rid = str(uuid.uuid4())
        if verb == "set-secret":
            await ctx.api.call(
                "definitions",
                "SetSecret",
                dpb.SetSecretRequest(
                    request_id=rid, name=form.get("name", ""), value=form.get("value", "")
                ),
            )
            ctx.session.say("ok", f"Secret {form.get('name', '')} saved.")
        elif verb == "delete-secret":
            await ctx.api.call(
                "definitions",
                "DeleteSecret",
                dpb.DeleteSecretRequest(request_id=rid, name=form.get("name", "")),
            )
            ctx.session.say("ok", f"Secret {form.get('name', '')} deleted.")
        elif verb == "set-member":
            await ctx.api.call(
                "definitions",
                "SetMember",
                dpb.SetMemberRequest(
                    request_id=rid,
                    principal=form.get("principal", ""),
                    role=ROLES.get(form.get("role", ""), 0),
                ),
            )
            ctx.session.say("ok", f"{form.get('principal', '')} is now {form.get('role', '')}.")
        elif verb == "remove-member":
            await ctx.api.call(
                "definitions",
                "RemoveMember",
                dpb.RemoveMemberRequest(request_id=rid, principal=form.get("principal", "")),
            )
            ctx.session.say("ok", f"{form.get('principal', '')} removed.")
        elif verb == "create-token":
            try:
                ttl = int(form.get("ttl_days", "0") or 0) * 86400
            except ValueError as exc:
                raise FormError("ttl_days must be a whole number of days") from exc
            created = await ctx.api.call(
                "definitions",
                "CreateApiToken",
                dpb.CreateApiTokenRequest(
                    request_id=rid,
                    principal=form.get("principal", ""),
                    role=ROLES.get(form.get("role", ""), 0),
                    name=form.get("name", ""),
                    ttl_seconds=ttl,
                ),
            )
            # Shown once, in this response only: never stored in the session or redirected.
            return await self.settings(ctx, new_token=created)
        elif verb == "revoke-token":
            await ctx.api.call(
                "definitions",
                "RevokeApiToken",
                dpb.RevokeApiTokenRequest(request_id=rid, token_id=form.get("token_id", "")),
            )
            ctx.session.say("ok", "Token revoked.")
        else:
            raise Page(self.error_page(ctx, 404, "Not found", f"No action {verb!r}."))
        return self.redirect(ctx, f"{PREFIX}/settings")

    async def audit(self, ctx: Ctx) -> Response:
        """The workspace's audit log with filters and paging (the service lets owners only)."""
        params = ctx.request.query_params
        try:
            listed = await ctx.api.call(
                "definitions", "ListAuditEvents", audit_request(params, ctx.tz)
            )
        except ApiError as exc:
            if exc.http != 400:
                raise
            # A filter the service refuses (an empty time range): say why above the filters.
            ctx.session.say("error", exc.describe())
            listed = audit_pb2.ListAuditEventsResponse()
        return self.render(
            ctx,
            "audit.html",
            events=listed.events,
            params=params,
            next_url=next_page(f"{PREFIX}/audit", params, listed.next_page_token),
        )


def struct_time(value: str, tz: dt.tzinfo) -> timestamp_pb2.Timestamp:
    """A `datetime-local` form value in the user's zone as a protobuf Timestamp."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise FormError(f"{value!r} is not a date and time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when.astimezone(dt.UTC))
    return ts


def next_page(path: str, params: Mapping[str, str], token: str) -> str:
    """The next page's URL with the same filters, empty on the last page."""
    if not token:
        return ""
    query = {k: v for k, v in params.items() if k != "page_token" and v}
    return f"{path}?{urlencode({**query, 'page_token': token})}"


def audit_request(params: Mapping[str, str], tz: dt.tzinfo) -> audit_pb2.ListAuditEventsRequest:
    """The audit page's query (filters, time range in the user's zone) as the RPC's request."""
    request = audit_pb2.ListAuditEventsRequest(
        page_size=AUDIT_PAGE_SIZE,
        page_token=params.get("page_token", ""),
        actor=params.get("actor", "").strip(),
        target_type=params.get("target_type", ""),
        target_id=params.get("target", "").strip(),
        action=params.get("action", "").strip(),
    )
    if params.get("since"):
        request.start_time.CopyFrom(struct_time(params["since"], tz))
    if params.get("until"):
        request.end_time.CopyFrom(struct_time(params["until"], tz))
    return request
