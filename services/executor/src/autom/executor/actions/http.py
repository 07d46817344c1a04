"""http_request: httpx with a deadline, a size cap, a pinned SSRF-checked address per hop."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import httpx
from opentelemetry.trace import SpanKind

from autom.core import tracing
from autom.executor.actions.base import ActionContext
from autom.executor.actions.ssrf import (
    Policy,
    Resolver,
    SsrfRefused,
    parse_literal,
    resolve_pinned,
    system_resolver,
)
from autom.executor.domain.policy import seconds
from autom.executor.errors import StepError

_REDIRECTS = {301, 302, 303, 307, 308}
_RETRYABLE_STATUS = {408, 425, 429}
# Sent to the first origin only, as curl, requests and httpx do on a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class HttpStatusError(StepError):
    """The response status was an error (4xx fail at once, 5xx/408/429 are retried)."""

    type_name = "HttpStatusError"


class HttpRequestAction:
    """Sends one request; every hop is resolved once, checked and pinned."""

    def __init__(
        self,
        *,
        policy: Policy,
        max_response_bytes: int,
        default_timeout: float,
        max_redirects: int,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._policy = policy
        self._max_bytes = max_response_bytes
        self._default_timeout = default_timeout
        self._max_redirects = max_redirects
        self._resolver = resolver
        # trust_env=False: an environment proxy would connect to the name, bypassing the pin.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()

    async def __call__(self, params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        method = str(params.get("method") or "GET").upper()
        timeout = seconds(params.get("timeout"), self._default_timeout) or self._default_timeout
        headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
        if not any(k.lower() == "idempotency-key" for k in headers):
            headers["Idempotency-Key"] = ctx.idempotency_key
        content: bytes | None = None
        if "json" in params:
            content = json.dumps(params["json"]).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        elif params.get("body") is not None:
            content = str(params["body"]).encode()
        follow = bool(params.get("follow_redirects", True))
        self._precheck(str(params["url"]))
        try:
            url = httpx.URL(str(params["url"]))
        except (httpx.InvalidURL, TypeError) as exc:
            raise StepError(f"invalid url: {exc}", retryable=False, type_name="InvalidUrl") from exc
        if params.get("query"):
            url = url.copy_merge_params({k: str(v) for k, v in params["query"].items()})

        # `timeout` bounds the whole request (connect, every redirect hop and the body), so a
        # server trickling bytes cannot hold the run; each operation is bounded by it too.
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(
                    method, url, headers, content, timeout, follow, params, ctx
                )
        except TimeoutError as exc:
            raise StepError(
                f"{method} {url.host}: no complete response within {timeout:g}s",
                type_name="HttpTimeout",
            ) from exc

    async def _follow(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
        follow: bool,
        params: dict[str, Any],
        ctx: ActionContext,
    ) -> dict[str, Any]:
        # Header values that carry a resolved secret (redact changes them).
        secret_headers = {k for k, v in headers.items() if ctx.redact(v) != v}
        for _hop in range(self._max_redirects + 1):
            response = await self._send(method, url, headers, content, timeout)
            status, resp_headers, body = response
            location = resp_headers.get("location")
            if follow and status in _REDIRECTS and location:
                target = url.join(location)
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, content = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                if _origin(target) != _origin(url):
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if k.lower() not in _CREDENTIAL_HEADERS and k not in secret_headers
                    }
                    if content is not None and self._carries_secret(content, ctx):
                        raise StepError(
                            f"refusing to resend a body holding a secret to {target.host}",
                            retryable=False,
                            type_name="RedirectRefused",
                        )
                url = target
                continue
            return self._output(status, resp_headers, body, params, url)
        raise StepError(
            f"more than {self._max_redirects} redirects",
            retryable=False,
            type_name="TooManyRedirects",
        )

    @staticmethod
    def _carries_secret(content: bytes, ctx: ActionContext) -> bool:
        text = content.decode("utf-8", errors="replace")
        return bool(ctx.redact(text) != text)

    def _precheck(self, raw: str) -> None:
        # IP literals in odd spellings (0177.0.0.1, 0x7f.1) are refused as SSRF before httpx
        # gets a chance to reject or reinterpret them.
        try:
            host = urllib.parse.urlsplit(raw).hostname or ""
        except ValueError:
            return
        literal = parse_literal(host)
        if literal is not None and not self._policy.allows(host, literal):
            raise SsrfRefused(f"refusing to connect to {host!r}: {literal} is not a public address")

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request (each redirect is another), as a client span of the step's trace."""
        # Host and port only: a path or query may hold a secret.
        with tracing.span(
            f"HTTP {method}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
            },
        ) as span:
            status, resp_headers, body = await self._send_once(
                method, url, headers, content, timeout
            )
            span.set_attribute("http.response.status_code", status)
            return status, resp_headers, body

    async def _send_once(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        if url.scheme not in ("http", "https"):
            raise StepError(
                f"unsupported URL scheme {url.scheme!r}", retryable=False, type_name="InvalidUrl"
            )
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = await resolve_pinned(host, port, self._policy, self._resolver)
        pinned = url.copy_with(host=ip)
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            # Connect to the pinned address but verify the certificate for the real name.
            extensions["sni_hostname"] = host
        send_headers = {**headers, "Host": url.netloc.decode("ascii")}
        request = self._client.build_request(
            method,
            pinned,
            headers=send_headers,
            content=content,
            timeout=httpx.Timeout(timeout),
            extensions=extensions,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise StepError(f"{method} {host}: timed out", type_name="HttpTimeout") from exc
        except httpx.TransportError as exc:
            raise StepError(f"{method} {host}: {exc}", type_name="HttpConnectionError") from exc
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise StepError(
                        f"response body exceeds {self._max_bytes} bytes",
                        retryable=False,
                        type_name="ResponseTooLarge",
                    )
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise StepError(f"{method} {host}: timed out", type_name="HttpTimeout") from exc
        except httpx.TransportError as exc:
            raise StepError(f"{method} {host}: {exc}", type_name="HttpConnectionError") from exc
        finally:
            await response.aclose()
        resp_headers: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            k = key.lower()
            resp_headers[k] = f"{resp_headers[k]}, {value}" if k in resp_headers else value
        return response.status_code, resp_headers, b"".join(chunks)

    def _output(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        params: dict[str, Any],
        url: httpx.URL,
    ) -> dict[str, Any]:
        output: dict[str, Any] = {"status": status, "headers": headers}
        text = body.decode("utf-8", errors="replace")
        parsed = False
        if "json" in headers.get("content-type", ""):
            try:
                output["json"] = json.loads(text) if text else None
                parsed = True
            except ValueError:
                pass
        if not parsed:
            output["text"] = text
        expected = params.get("expect_status")
        failed = status not in expected if expected else status >= 400
        if failed:
            retryable = status >= 500 or status in _RETRYABLE_STATUS
            raise HttpStatusError(
                f"{url.host} answered HTTP {status}: {text[:200]}", retryable=retryable
            )
        return output
