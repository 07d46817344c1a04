"""http_request against a loopback server (allow-listed), and its SSRF guard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from autom.executor.actions.base import ActionContext, Budget
from autom.executor.actions.http import HttpRequestAction
from autom.executor.actions.ssrf import Policy, SsrfRefused, is_public, parse_literal
from autom.executor.errors import StepError

Harness = Any


def steps_of(row: Any) -> dict[str, dict[str, Any]]:
    return {r["step_id"]: r for r in row.steps}


class Sink:
    """A loopback HTTP server that records requests and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.path == "/flaky" and len(self.requests) <= self.fail_first:
            return web.Response(status=503, text="busy")
        if request.path == "/missing":
            return web.Response(status=404, text="nope")
        if request.path == "/big":
            return web.Response(text="x" * 5000)
        if request.path == "/text":
            return web.Response(text="plain {{ 7 * 7 }}")
        if request.path.startswith("/redirect"):
            raise web.HTTPFound(request.query["to"])
        return web.json_response({"ok": True, "path": request.path, "echo": body})


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sink.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield sink
    await runner.cleanup()


def plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "h", "plan": list(steps)}


async def test_json_response_is_the_output_with_status_and_headers(
    harness: Harness, sink: Sink
) -> None:
    row = await harness.run(
        plan(
            {
                "id": "call",
                "action": "http_request",
                "params": {
                    "method": "POST",
                    "url": f"http://127.0.0.1:{sink.port}/x",
                    "json": {"a": "{{ inputs.a }}"},
                },
            }
        ),
        {"a": 5},
    )
    assert row.status == "succeeded", row.steps
    out = steps_of(row)["call"]["output"]
    assert out["status"] == 200
    assert out["json"]["ok"] is True
    assert json.loads(out["json"]["echo"]) == {"a": 5}
    assert out["headers"]["content-type"].startswith("application/json")
    assert sink.requests[0]["headers"]["Idempotency-Key"] == f"{row.id}:call"


async def test_text_bodies_are_data_and_never_rendered(harness: Harness, sink: Sink) -> None:
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "http_request",
                "params": {"url": f"http://127.0.0.1:{sink.port}/text"},
            },
            {"id": "b", "action": "transform", "params": {"output": "{{ steps.a.output.text }}"}},
        )
    )
    assert steps_of(row)["b"]["output"] == "plain {{ 7 * 7 }}"


async def test_recovery_reports_the_attempt_that_produced_the_result(
    harness: Harness, sink: Sink
) -> None:
    sink.fail_first = 2
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "http_request",
                "params": {"url": f"http://127.0.0.1:{sink.port}/flaky"},
                "retry": {
                    "max_retries": 4,
                    "backoff": "exponential",
                    "initial_delay": "1ms",
                    "max_delay": "5ms",
                },
            }
        )
    )
    a = steps_of(row)["a"]
    assert row.status == "succeeded"
    assert a["attempts"] == 3
    assert a["output"]["status"] == 200
    keys = {r["headers"]["Idempotency-Key"] for r in sink.requests}
    assert keys == {f"{row.id}:a"}


async def test_exhaustion_reraises_the_last_error_after_exactly_the_allowed_attempts(
    harness: Harness, sink: Sink
) -> None:
    sink.fail_first = 100
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "http_request",
                "params": {"url": f"http://127.0.0.1:{sink.port}/flaky"},
                "retry": {"max_retries": 2, "backoff": "linear", "initial_delay": "1ms"},
            }
        )
    )
    a = steps_of(row)["a"]
    assert row.status == "failed"
    assert a["attempts"] == 3 and len(sink.requests) == 3
    assert a["error"]["type"] == "HttpStatusError"
    assert "503" in a["error"]["message"]


async def test_4xx_fails_at_once(harness: Harness, sink: Sink) -> None:
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "http_request",
                "params": {"url": f"http://127.0.0.1:{sink.port}/missing"},
                "retry": {"max_retries": 3, "initial_delay": "1ms"},
            }
        )
    )
    a = steps_of(row)["a"]
    assert a["attempts"] == 1 and a["error"]["retryable"] is False


def _ctx() -> ActionContext:
    import logging

    return ActionContext(
        run_id="r",
        step_id="s",
        attempt=1,
        workspace_id="w",
        automation_id="a",
        principal="p",
        budget=Budget(None),
        log=logging.getLogger("t"),
    )


async def test_response_size_is_capped(sink: Sink) -> None:
    action = HttpRequestAction(
        policy=Policy.from_lists(["127.0.0.0/8"], []),
        max_response_bytes=1000,
        default_timeout=5,
        max_redirects=3,
    )
    try:
        with pytest.raises(StepError) as info:
            await action({"url": f"http://127.0.0.1:{sink.port}/big"}, _ctx())
        assert info.value.type_name == "ResponseTooLarge"
    finally:
        await action.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[::ffff:7f00:1]:{port}/",
        "http://2130706433:{port}/",
        "http://0177.0.0.1:{port}/",
        "http://0x7f.0.0.1:{port}/",
        "http://127.1:{port}/",
        "http://0:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://0.0.0.0:{port}/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::]:{port}/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
    ],
)
async def test_ssrf_matrix_is_refused_before_any_connection(url: str) -> None:
    connections: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    action = HttpRequestAction(
        policy=Policy(), max_response_bytes=1000, default_timeout=2, max_redirects=3
    )
    try:
        with pytest.raises(SsrfRefused):
            await action({"url": url.format(port=port)}, _ctx())
    finally:
        await action.aclose()
        server.close()
        await server.wait_closed()
    assert connections == []


async def test_hostnames_resolving_to_private_addresses_are_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"evil.example": ["93.184.216.34", "10.0.0.5"], "meta.example": ["169.254.169.254"]}[
            host
        ]

    action = HttpRequestAction(
        policy=Policy(),
        max_response_bytes=1000,
        default_timeout=2,
        max_redirects=3,
        resolver=resolver,
    )
    try:
        for host in ("evil.example", "meta.example"):
            with pytest.raises(SsrfRefused):
                await action({"url": f"http://{host}/"}, _ctx())
    finally:
        await action.aclose()


async def test_redirect_to_loopback_is_refused_at_the_hop(sink: Sink) -> None:
    hits: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(1)
        writer.close()

    target = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    # The first hop is allowed by name; the redirect names a loopback IP that is not allowed.
    action = HttpRequestAction(
        policy=Policy.from_lists([], ["localhost"]),
        max_response_bytes=1000,
        default_timeout=2,
        max_redirects=3,
    )
    try:
        with pytest.raises(SsrfRefused):
            await action(
                {
                    "url": f"http://localhost:{sink.port}/redirect?to=http://127.0.0.1:{target_port}/"
                },
                _ctx(),
            )
    finally:
        await action.aclose()
        target.close()
        await target.wait_closed()
    assert len(sink.requests) == 1 and hits == []


def test_address_classification() -> None:
    for public in ("93.184.216.34", "2606:4700::1111", "8.8.8.8"):
        assert is_public(parse_literal(public))  # type: ignore[arg-type]
    for private in ("127.0.0.1", "::1", "::ffff:10.0.0.1", "100.100.100.100", "fd12::1", "::"):
        assert not is_public(parse_literal(private))  # type: ignore[arg-type]
    assert str(parse_literal("017700000001")) == "127.0.0.1"


async def test_ssrf_refusal_fails_the_step_without_retry(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {
                "id": "meta",
                "action": "http_request",
                "params": {"url": "http://169.254.169.254/latest/meta-data/"},
                "retry": {"max_retries": 3, "initial_delay": "1ms"},
            }
        )
    )
    meta = steps_of(row)["meta"]
    assert row.status == "failed"
    assert meta["error"]["type"] == "SsrfRefused"
    assert meta["attempts"] == 1


@pytest.fixture
async def other_sink() -> AsyncIterator[Sink]:
    """A second origin (another port on loopback)."""
    sink = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sink.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield sink
    await runner.cleanup()


CREDENTIALS = {
    "Authorization": "Bearer plain-credential",
    "Cookie": "session=abc",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
    "X-Api-Key": "{{ secrets.TOKEN }}",
    "X-Signed": "sig={{ secrets.TOKEN | b64encode }}",
    "X-Trace": "keep-me",
}


async def test_redirect_to_another_origin_drops_credentials_and_secret_headers(
    harness: Harness, sink: Sink, other_sink: Sink
) -> None:
    target = f"http://127.0.0.1:{other_sink.port}/landed"
    row = await harness.run(
        plan(
            {
                "id": "call",
                "action": "http_request",
                "params": {
                    "url": f"http://127.0.0.1:{sink.port}/redirect?to={target}",
                    "headers": CREDENTIALS,
                },
            }
        )
    )
    assert row.status == "succeeded", row.steps
    first = {k.lower(): v for k, v in sink.requests[0]["headers"].items()}
    assert first["x-api-key"] == "s3cr3t-value"
    assert first["authorization"] == "Bearer plain-credential"
    assert len(other_sink.requests) == 1
    landed = {k.lower(): v for k, v in other_sink.requests[0]["headers"].items()}
    for name in ("authorization", "cookie", "proxy-authorization", "x-api-key", "x-signed"):
        assert name not in landed, name
    assert landed["x-trace"] == "keep-me"
    assert "s3cr3t-value" not in str(other_sink.requests)


async def test_redirect_within_the_origin_keeps_every_header(harness: Harness, sink: Sink) -> None:
    row = await harness.run(
        plan(
            {
                "id": "call",
                "action": "http_request",
                "params": {
                    "url": f"http://127.0.0.1:{sink.port}/redirect?to=/landed",
                    "headers": CREDENTIALS,
                },
            }
        )
    )
    assert row.status == "succeeded", row.steps
    landed = {k.lower(): v for k, v in sink.requests[1]["headers"].items()}
    assert landed["authorization"] == "Bearer plain-credential"
    assert landed["x-api-key"] == "s3cr3t-value"
    assert landed["cookie"] == "session=abc"


async def test_redirect_to_another_origin_never_resends_a_body_holding_a_secret(
    harness: Harness, sink: Sink, other_sink: Sink
) -> None:
    target = f"http://127.0.0.1:{other_sink.port}/landed"

    async def keep_method(request: web.Request) -> web.StreamResponse:
        await request.read()
        sink.requests.append({"path": request.path})
        raise web.HTTPTemporaryRedirect(target)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", keep_method)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        row = await harness.run(
            plan(
                {
                    "id": "call",
                    "action": "http_request",
                    "params": {
                        "method": "PUT",
                        "url": f"http://127.0.0.1:{port}/put",
                        "json": {"token": "{{ secrets.TOKEN }}"},
                    },
                }
            )
        )
    finally:
        await runner.cleanup()
    assert row.status == "failed"
    assert steps_of(row)["call"]["error"]["type"] == "RedirectRefused"
    assert other_sink.requests == []


async def test_a_trickling_server_cannot_hold_a_request_past_its_timeout() -> None:
    stop = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        # One byte at a time, each well within the per-read timeout, forever.
        while not stop.is_set():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    action = HttpRequestAction(
        policy=Policy.from_lists(["127.0.0.0/8"], []),
        max_response_bytes=1_000_000,
        default_timeout=30,
        max_redirects=3,
    )
    try:
        with pytest.raises(StepError) as info:
            # The outer bound only keeps a regression from hanging the suite.
            await asyncio.wait_for(
                action({"url": f"http://127.0.0.1:{port}/", "timeout": "1s"}, _ctx()), 30
            )
        assert info.value.type_name == "HttpTimeout"
        assert info.value.retryable
    finally:
        stop.set()
        await action.aclose()
        server.close()
        await server.wait_closed()
