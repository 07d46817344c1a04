"""The web console in headless Chromium against the real stack (services, PostgreSQL, NATS).

One stack and one browser for the module; each test signs in with its own browser context.
Screenshots land in docs/ (shown in the README).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats
import pytest
from cryptography.fernet import Fernet
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as epb_grpc
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp, bearer
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.devstack.testing import TEST_SIGNING_KEY, service_keys
from autom.drafter.testing import ScriptedLLM
from autom.gateway.app import Gateway
from autom.gateway.console.text import parse_definition
from autom.gateway.settings import GatewaySettings

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.timeout(240)

CHROMIUM = os.environ.get("AUTOM_CHROMIUM", "/usr/bin/chromium")
DOCS = Path(__file__).resolve().parent.parent / "docs"

# Line 9 holds the deliberate error: `action: lgo` is no action.
BROKEN = """\
name: greeter
description: Greets whoever asks, after a short wait
inputs:
  schema:
    type: object
    properties:
      who: {type: string, description: Who to greet}
    required: [who]
plan:
  - id: pause
    action: wait
    params: {duration: 4s}
  - id: greet
    action: lgo
    params: {message: "hello {{ inputs.who }}"}
"""
FIXED = BROKEN.replace("action: lgo", "action: log")
TICKER = {
    "name": "ticker",
    "triggers": [{"type": "schedule",
                  "config": {"cron": "*/2 * * * * *", "timezone": "Europe/Zurich",
                             "catchup": "none"}}],
    "plan": [{"id": "tick", "action": "log", "params": {"message": "tick"}}],
}  # fmt: skip
DRAFTED = {
    "name": "status-digest",
    "description": "Post the status page every weekday morning",
    "triggers": [
        {"type": "schedule", "config": {"cron": "0 8 * * 1-5", "timezone": "Europe/Zurich"}}
    ],
    "plan": [
        {"id": "fetch", "action": "http_request",
         "params": {"method": "GET", "url": "https://status.example.com/api"}},
    ],
}  # fmt: skip


@dataclass
class Stack:
    """The running stack: the gateway's URL, tokens and API stubs for setup and checks."""

    url: str
    llm: ScriptedLLM
    owner: str
    viewer: str
    second: str  # an owner of another workspace
    definitions: dpb_grpc.DefinitionsServiceStub
    executor: epb_grpc.ExecutorServiceStub


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str, template_database: str, nats_server_url: str
) -> AsyncIterator[Stack]:
    """Definitions, scheduler, executor, drafter (scripted model) and the gateway, once."""
    nc = await nats.connect(nats_server_url)
    js = nc.jetstream()
    for info in await js.streams_info():
        if info.config.name and info.config.name.startswith("AUTOM_"):
            await js.delete_stream(info.config.name)
    await nc.close()
    db = f"autom_console_{uuid.uuid4().hex[:10]}"
    database_url = f"{pg_server_url.rpartition('/')[0]}/{db}"

    from autom.definitions.app import build_app as build_definitions
    from autom.definitions.settings import DefinitionsSettings
    from autom.drafter.app import build_app as build_drafter
    from autom.drafter.settings import DrafterSettings
    from autom.executor.app import build_app as build_executor
    from autom.executor.settings import ExecutorSettings
    from autom.scheduler.app import build_app as build_scheduler
    from autom.scheduler.settings import SchedulerSettings

    common: dict[str, Any] = {"database_url": database_url, "nats_url": nats_server_url,
                              "grpc_port": 0}  # fmt: skip
    async with contextlib.AsyncExitStack() as cleanup:
        # Undone in reverse: channels, gateway, services, the model server, the database.
        await _admin(pg_server_url, f'CREATE DATABASE "{db}" TEMPLATE "{template_database}"')
        cleanup.push_async_callback(
            _admin, pg_server_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'
        )
        llm = await cleanup.enter_async_context(ScriptedLLM())

        async def start(build: Any, settings: Any) -> GrpcApp:
            app: GrpcApp = await build(settings)
            await app.start()
            cleanup.push_async_callback(app.stop)
            return app

        defs = await start(
            build_definitions,
            DefinitionsSettings(
                **common,
                **service_keys("definitions"),
                secrets_key=Fernet.generate_key().decode(),
            ),
        )
        sched = await start(
            build_scheduler,
            SchedulerSettings(**common, **service_keys("scheduler"), definitions_addr=defs.address),
        )
        execu = await start(
            build_executor,
            ExecutorSettings(**common, **service_keys("executor"), definitions_addr=defs.address),
        )
        draft = await start(build_drafter, DrafterSettings(
            **common, **service_keys("drafter"), definitions_addr=defs.address,
            scheduler_addr=sched.address,
            model="openai/gpt-4o-mini", api_key="test", api_base=llm.url, num_retries=0,
            timeout_seconds=30.0))  # fmt: skip
        settings = GatewaySettings(
            definitions_addr=defs.address, scheduler_addr=sched.address,
            executor_addr=execu.address, drafter_addr=draft.address, shutdown_grace_seconds=1.0,
        )  # fmt: skip
        url = await cleanup.enter_async_context(serve_asgi(Gateway(settings)))
        defs_channel = grpc.aio.insecure_channel(defs.address)
        cleanup.push_async_callback(defs_channel.close)
        exec_channel = grpc.aio.insecure_channel(execu.address)
        cleanup.push_async_callback(exec_channel.close)
        signer = TokenSigner(TEST_SIGNING_KEY)
        yield Stack(
            url=url,
            llm=llm,
            owner=signer.issue(subject="user:owner", workspace_id="default",
                               role=Role.OWNER)[0],
            viewer=signer.issue(subject="user:viewer", workspace_id="default",
                                role=Role.VIEWER)[0],
            second=signer.issue(subject="user:owner", workspace_id="second",
                                role=Role.OWNER)[0],
            definitions=dpb_grpc.DefinitionsServiceStub(defs_channel),
            executor=epb_grpc.ExecutorServiceStub(exec_channel),
        )  # fmt: skip


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium driven by Playwright (`make test` installs it when it can)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` (make test does it as "
            "root with apt-get) or set AUTOM_CHROMIUM to a Chromium binary"
        )
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


async def _signed_in(browser: Any, stack: Stack, token: str) -> Any:
    context = await browser.new_context(
        base_url=stack.url, timezone_id="Europe/Zurich", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await page.goto("/")
    assert page.url.endswith("/ui/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ui/automations")
    return page


async def _shot(page: Any, name: str) -> None:
    # The README's screenshots: refreshed on request only, so a test run leaves the tree clean.
    target = DOCS if os.environ.get("AUTOM_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
    target.mkdir(exist_ok=True)
    await page.screenshot(path=str(target / f"console-{name}.png"), full_page=False)


async def test_sign_in_edit_run_live_pause_resume_and_scheduled_runs(
    stack: Stack, browser: Any
) -> None:
    page = await _signed_in(browser, stack, stack.owner)
    expect = playwright_api.expect
    await expect(page.locator(".empty h2")).to_have_text("No automations yet")

    # A deliberate error is shown at its field and line, as typed and again on Create.
    await page.click("text=write the YAML")
    await page.fill("#yaml", BROKEN)
    error = page.locator('.violations li[data-field="plan[1].action"]')
    await expect(error).to_contain_text("line 14")
    await _shot(page, "editor")
    await page.click("#create")
    await expect(error).to_be_visible()
    assert await page.locator("#yaml").input_value() == BROKEN
    await page.fill("#yaml", FIXED)
    await expect(page.locator("#violations .ok")).to_have_text("✓ Valid definition")
    await page.click("#create")
    await expect(page.locator("h1")).to_contain_text("greeter")
    await expect(page.locator("#status")).to_have_text("active")

    # Save as a new version from the editor.
    await page.fill("#yaml", FIXED.replace("after a short wait", "after four seconds"))
    await page.click("#save")
    await expect(page.locator(".flash.ok")).to_have_text("Saved version 2.")
    await page.click("text=Show diff")
    await expect(page.locator(".diff .add")).to_have_text(
        "+description: Greets whoever asks, after four seconds"
    )
    await page.go_back()

    # Run now with the form generated from the inputs schema; the timeline goes live.
    await page.fill("#in-who", "Ada")
    await page.click("#run-now")
    await page.wait_for_url("**/ui/runs/*")
    assert await page.locator("#timeline[data-stream]").count() == 1, "the run was not live"
    await expect(page.locator("#run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )
    await expect(page.locator("#timeline")).to_have_attribute("data-finished", "true")
    await expect(page.locator('[data-step="greet"] details[open] pre')).to_contain_text("hello Ada")
    await _shot(page, "run")

    # Pause with a note, then resume.
    await page.click("h1 a")
    await page.fill("#note", "holiday")
    await page.click("#pause")
    await expect(page.locator("#status")).to_have_text("paused")
    await expect(page.locator("body")).to_contain_text("Pause note: holiday")
    await page.click("#resume")
    await expect(page.locator("#status")).to_have_text("active")

    # A scheduled automation: next fires in the user's zone, then a scheduled run appears.
    definition = json_format.ParseDict(TICKER, definition_pb2.AutomationDefinition())
    created = await stack.definitions.CreateAutomation(
        dpb.CreateAutomationRequest(definition=definition), metadata=bearer(stack.owner)
    )
    ticker = created.automation.id

    async def schedule_shown() -> None:
        # The scheduler picks the trigger up from the definition events.
        await page.goto(f"/ui/automations/{ticker}")
        assert await page.locator("ol.fires li").count() == 10

    await assert_eventually(schedule_shown, timeout=20, interval=0.3)
    await expect(page.locator("ol.fires li").first).to_contain_text("CET")

    async def scheduled_run_listed() -> None:
        await page.goto(f"/ui/runs?automation={ticker}")
        assert await page.locator("tbody tr", has_text="schedule").count() >= 1

    await assert_eventually(scheduled_run_listed, timeout=20, interval=0.5)
    await page.goto(f"/ui/automations/{ticker}")
    await page.click("text=Trigger now")
    await expect(page.locator(".flash.ok")).to_contain_text("Fired now")
    await page.goto("/ui/automations")
    await expect(page.locator("tbody tr")).to_have_count(2)
    await page.fill("#q", "tick")
    await page.click("text=Filter")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("ticker")
    await page.fill("#q", "")
    await page.select_option("#status", "paused")
    await page.click("text=Filter")
    await expect(page.locator(".empty")).to_contain_text("No automation matches")
    await stack.definitions.PauseAutomation(
        dpb.PauseAutomationRequest(automation_id=ticker), metadata=bearer(stack.owner)
    )
    await page.context.close()


async def test_draft_clarify_approve(stack: Stack, browser: Any) -> None:
    page = await _signed_in(browser, stack, stack.owner)
    expect = playwright_api.expect
    await page.click("nav >> text=Drafts")
    stack.llm.reply({"questions": ["Which status page should I read?"]})
    await page.fill("#intent", "every weekday at 8 tell me how our status page looks")
    # The drafter's first model call imports litellm: slow on a loaded machine.
    await page.click("#draft-it", timeout=120_000)
    await expect(page.locator("#draft-status")).to_have_text("needs clarification")
    await expect(page.locator(".questions")).to_contain_text("Which status page")

    stack.llm.reply({"definition": DRAFTED})
    await page.fill("#instruction", "https://status.example.com/api")
    await page.click("#send", timeout=120_000)
    await expect(page.locator("#draft-status")).to_have_text("pending")
    card = page.locator("#approval")
    await expect(card.locator("h2")).to_have_text("status-digest")
    await expect(card).to_contain_text("http_request")
    await _shot(page, "draft")
    await page.click("#approve")
    await expect(page.locator("h1")).to_contain_text("status-digest")
    await expect(page.locator(".flash.ok")).to_contain_text("Approved")

    # A change in plain English: the approval card shows the diff against the version.
    stack.llm.reply({"definition": {**DRAFTED, "description": "Post it on weekdays"}})
    await page.fill("#change", "say weekdays in the description")
    await page.click("text=Draft the change", timeout=120_000)
    await expect(page.locator("#draft-status")).to_have_text("pending")
    await expect(page.locator("#approval .diff .add")).to_have_text(
        "+description: Post it on weekdays"
    )
    await page.context.close()


async def test_viewer_sees_no_edit_controls_and_forged_posts_are_refused(
    stack: Stack, browser: Any
) -> None:
    definition, _ = parse_definition(FIXED.replace("greeter", "viewed"))
    created = await stack.definitions.CreateAutomation(
        dpb.CreateAutomationRequest(definition=definition), metadata=bearer(stack.owner)
    )
    aid = created.automation.id
    page = await _signed_in(browser, stack, stack.viewer)
    expect = playwright_api.expect
    await page.goto(f"/ui/automations/{aid}")
    await expect(page.locator("h1")).to_contain_text("viewed")
    for control in ("#save", "#pause", "#archive", "#run-now", "text=New automation"):
        assert await page.locator(control).count() == 0, control
    assert await page.locator("#yaml").get_attribute("readonly") is not None

    # The viewer's own session and CSRF token: the services still say no.
    csrf = await page.locator("input[name=csrf]").first.input_value()
    denied = await page.context.request.post(
        f"/ui/automations/{aid}/archive", form={"csrf": csrf}, max_redirects=0
    )
    assert denied.status == 403, await denied.text()
    assert denied.headers["x-frame-options"] == "DENY"
    assert "Not allowed" in await denied.text()

    # An owner's session with no or a forged CSRF token: refused before any RPC.
    owner = await _signed_in(browser, stack, stack.owner)
    (cookie,) = [c for c in await owner.context.cookies() if c["name"] == "autom_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert stack.owner not in cookie["value"]  # encrypted, not merely signed
    for form in ({}, {"csrf": "forged"}):
        forged = await owner.context.request.post(
            f"/ui/automations/{aid}/archive", form=form, max_redirects=0
        )
        assert forged.status == 403, await forged.text()
        assert "Request refused" in await forged.text()
    got = await stack.definitions.GetAutomation(
        dpb.GetAutomationRequest(automation_id=aid), metadata=bearer(stack.owner)
    )
    assert got.automation.status == definitions_pb2.AUTOMATION_STATUS_ACTIVE
    runs = await stack.executor.ListRuns(
        epb.ListRunsRequest(automation_id=aid), metadata=bearer(stack.owner)
    )
    assert not runs.runs

    # Settings: a secret by name only, a token shown once.
    await owner.click("nav >> text=Settings")
    await owner.fill("form[action$=set-secret] input[name=name]", "API_KEY")
    await owner.fill("form[action$=set-secret] input[name=value]", "s3cr3t-value")
    await owner.click("text=Set or replace")
    await expect(owner.locator("td code", has_text="API_KEY")).to_have_count(1)
    assert "s3cr3t-value" not in await owner.content()
    await owner.fill("form[action$=create-token] input[name=principal]", "user:bob")
    await owner.select_option("form[action$=create-token] select[name=role]", "viewer")
    await owner.click("text=Create token")
    await expect(owner.locator("#new-token")).to_contain_text(".")
    bob_token = (await owner.locator("#new-token").inner_text()).strip()
    await owner.goto("/ui/settings")
    await expect(owner.locator("#new-token")).to_have_count(0)
    tokens = owner.locator("section", has=owner.locator("h2", has_text="API tokens"))
    await expect(tokens.locator("td", has_text="user:bob")).to_have_count(1)

    # The new token signs in; once revoked, its session goes back to sign-in and says why.
    bob = await _signed_in(browser, stack, bob_token)
    owner.once("dialog", lambda dialog: dialog.accept())  # "Revoke this token?"
    await tokens.locator("tr", has_text="user:bob").locator("button", has_text="Revoke").click()
    await expect(tokens.locator("td", has_text="user:bob")).to_have_count(0)

    async def bob_signed_out() -> None:
        await bob.goto("/ui/automations")
        assert bob.url.endswith("/ui/login"), bob.url

    await assert_eventually(bob_signed_out, timeout=15, interval=0.3)
    await expect(bob.locator(".flash.error")).to_contain_text("Signed out")
    await bob.context.close()

    # A second workspace's token adds the workspace switcher.
    await owner.goto("/ui/login")
    await owner.fill("#token", stack.second)
    await owner.click("button[type=submit]")
    await owner.wait_for_url("**/ui/automations")
    switcher = owner.locator("select#ws")
    await expect(switcher).to_have_value("second")
    await expect(owner.locator("tbody tr")).to_have_count(0)
    await switcher.select_option("default")
    await expect(owner.locator("select#ws")).to_have_value("default")
    await expect(owner.locator("tbody tr", has_text="viewed")).to_have_count(1)

    # Error pages: unknown page, unknown automation, signed out.
    missing = await owner.goto("/ui/nowhere")
    assert missing is not None and missing.status == 404
    await expect(owner.locator("h1")).to_have_text("Not found")
    gone = await owner.goto(f"/ui/automations/{uuid.uuid4()}")
    assert gone is not None and gone.status == 404
    await owner.click("text=Sign out")
    await owner.wait_for_url("**/ui/login")
    await owner.goto("/ui/runs")
    assert owner.url.endswith("/ui/login")
    await owner.context.close()
    await page.context.close()


async def test_audit_log_for_owners_with_filters_and_refused_to_viewers(
    stack: Stack, browser: Any
) -> None:
    page = await _signed_in(browser, stack, stack.owner)
    expect = playwright_api.expect
    # Two changes through the console: a secret (whose value must never show) and a member.
    await page.click("nav >> text=Settings")
    await page.fill("form[action$=set-secret] input[name=name]", "AUDITED")
    await page.fill("form[action$=set-secret] input[name=value]", "hush-audit-value")
    await page.click("text=Set or replace")
    await expect(page.locator(".flash.ok")).to_contain_text("AUDITED")
    await page.fill("form[action$=set-member] input[name=principal]", "user:carol")
    await page.select_option("form[action$=set-member] select[name=role]", "viewer")
    await page.click("text=Add or change")
    await expect(page.locator(".flash.ok")).to_contain_text("user:carol")

    await page.click("#audit-link")
    await page.wait_for_url("**/ui/audit")
    rows = page.locator("#audit tbody tr")
    secret_set = rows.filter(has_text="secret.set").filter(has_text="AUDITED")
    await expect(secret_set).to_have_count(1)
    await expect(secret_set).to_contain_text("user:owner")
    await expect(secret_set.locator("td").first).to_contain_text(re.compile(r"CES?T"))
    await expect(rows.filter(has_text="member.set").filter(has_text="user:carol")).to_have_count(1)
    assert "hush-audit-value" not in await page.content()

    await page.fill("#f-action", "member.set")
    await page.click("#audit-filters button")
    await expect(rows.filter(has_text="user:carol")).to_have_count(1)
    await expect(rows.filter(has_text="secret.set")).to_have_count(0)
    assert "action=member.set" in page.url
    await page.fill("#f-actor", "user:nobody")
    await page.click("#audit-filters button")
    await expect(page.locator(".empty")).to_contain_text("No audit event matches")
    # A range the service refuses is said above the filters, not as an error page.
    await page.goto("/ui/audit?since=2026-12-02T00:00&until=2026-12-01T00:00")
    await expect(page.locator(".flash.error")).to_contain_text("end_time")
    await expect(page.locator("#audit-filters")).to_be_visible()
    await page.context.close()

    # A viewer has no link to it, and the service refuses the page itself.
    viewer = await _signed_in(browser, stack, stack.viewer)
    assert await viewer.locator("nav a[href$='/audit']").count() == 0
    refused = await viewer.goto("/ui/audit")
    assert refused is not None and refused.status == 403
    await expect(viewer.locator("h1")).to_have_text("Not allowed")
    await viewer.context.close()
