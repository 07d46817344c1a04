"""Webhook delivery checks (pure): signatures, freshness, sizes and delivery ids."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autom.core.errors import ResourceExhausted, Unauthenticated, ValidationFailed
from autom.core.registry import build_catalog
from autom.definitions.domain.validation import validate_definition
from autom.definitions.domain.webhook import signature, verify, webhook_triggers

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = "k3y"


def config(**overrides: Any) -> dict[str, Any]:
    definition = {"triggers": [{"type": "webhook", "config": {"secret": "K", **overrides}}]}
    return webhook_triggers(definition)[0].config


def stamped(body: bytes, at: datetime = NOW, **extra: str) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    return {"x-autom-timestamp": stamp, "x-autom-signature": signature(KEY, stamp, body), **extra}


def test_a_fresh_signed_delivery_passes_and_keeps_its_delivery_id() -> None:
    body = b'{"a": 1}'
    assert verify(config(), stamped(body, **{"x-autom-delivery": "d1"}), body, KEY, NOW) == "d1"
    # Without a delivery id the signature names the request: a replay maps to the same run.
    first = verify(config(), stamped(body), body, KEY, NOW)
    assert first == verify(config(), stamped(body), body, KEY, NOW + timedelta(seconds=1))
    assert first.startswith("sig:")


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, Unauthenticated),
        ({"x-autom-signature": "sha256=00", "x-autom-timestamp": "1"}, Unauthenticated),
        (stamped(b"other"), Unauthenticated),
        (stamped(b"{}", NOW - timedelta(minutes=6)), Unauthenticated),
        (stamped(b"{}", NOW + timedelta(minutes=6)), Unauthenticated),
    ],
)
def test_unsigned_forged_and_stale_deliveries_are_refused(
    headers: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        verify(config(), headers, b"{}", KEY, NOW)


def test_tolerance_and_body_limit_come_from_the_config() -> None:
    old = NOW - timedelta(minutes=8)
    assert verify(config(tolerance="10m"), stamped(b"{}", old), b"{}", KEY, NOW)
    with pytest.raises(ResourceExhausted) as caught:
        verify(config(max_body_bytes=4), stamped(b"12345"), b"12345", KEY, NOW)
    assert caught.value.reason == "payload_too_large"


def test_a_non_numeric_timestamp_is_a_bad_request() -> None:
    headers = {"x-autom-timestamp": "soon", "x-autom-signature": signature(KEY, "soon", b"{}")}
    with pytest.raises(ValidationFailed):
        verify(config(), headers, b"{}", KEY, NOW)


def test_github_style_body_signatures() -> None:
    cfg = config(
        auth="hmac_body",
        signature_header="X-Hub-Signature-256",
        delivery_header="X-GitHub-Delivery",
    )
    body = b'{"ref": "refs/heads/main"}'
    mac = hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": f"sha256={mac}", "x-github-delivery": "gh-1"}
    assert verify(cfg, headers, body, KEY, NOW) == "gh-1"
    with pytest.raises(Unauthenticated):
        verify(cfg, {**headers, "x-hub-signature-256": "sha256=" + "0" * 64}, body, KEY, NOW)


def test_bearer_mode_compares_the_secret() -> None:
    cfg = config(auth="bearer")
    assert verify(cfg, {"authorization": f"Bearer {KEY}"}, b"{}", KEY, NOW) == ""
    for header in ({}, {"authorization": "Bearer nope"}, {"authorization": f"Basic {KEY}"}):
        with pytest.raises(Unauthenticated):
            verify(cfg, header, b"{}", KEY, NOW)


def test_webhook_configs_are_validated_with_the_registry() -> None:
    catalog = build_catalog(plugins=False)

    def violations(trigger_config: dict[str, Any]) -> list[str]:
        raw = {
            "name": "hooked",
            "triggers": [{"type": "webhook", "config": trigger_config}],
            "plan": [{"id": "a", "action": "log", "params": {"message": "x"}}],
        }
        return [v.field for v in validate_definition(raw, catalog)[1]]

    assert violations({"secret": "HOOK_KEY"}) == []
    assert violations({}) == ["triggers[0].config"]
    assert violations({"secret": "lower"}) == ["triggers[0].config.secret"]
    assert violations({"secret": "K", "tolerance": "1.5m"}) == ["triggers[0].config.tolerance"]
    assert violations({"secret": "K", "max_body_bytes": 10**9}) == [
        "triggers[0].config.max_body_bytes"
    ]


def test_stripe_style_signature_header_carries_the_timestamp() -> None:
    body = b'{"id": "evt_1"}'
    stamp = str(int(NOW.timestamp()))
    mac = signature(KEY, stamp, body).removeprefix("sha256=")
    headers = {"x-autom-signature": f"t={stamp},v1=deadbeef,v1={mac}"}
    assert verify(config(), headers, body, KEY, NOW).startswith("sig:")
    with pytest.raises(Unauthenticated):
        verify(config(), {"x-autom-signature": f"t={stamp},v1=deadbeef"}, body, KEY, NOW)
    old = str(int(NOW.timestamp()) - 3600)
    stale = f"t={old},v1={signature(KEY, old, body).removeprefix('sha256=')}"
    with pytest.raises(Unauthenticated):
        verify(config(), {"x-autom-signature": stale}, body, KEY, NOW)
