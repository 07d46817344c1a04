"""Webhook deliveries: the trigger's settings and the proof a delivery is genuine (pure)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autom.core.errors import ResourceExhausted, Unauthenticated, ValidationFailed, Violation
from autom.core.registry import WEBHOOK_DEFAULTS
from autom.schedule.durations import parse_duration

# A delivery id longer than this cannot be a sender's id; it is refused, not truncated.
MAX_DELIVERY_ID = 128


class PayloadTooLarge(ResourceExhausted):
    """The body is over the trigger's max_body_bytes (the gateway answers 413)."""

    reason = "payload_too_large"


@dataclass(frozen=True)
class WebhookTrigger:
    """A webhook trigger of a definition, defaults filled in."""

    trigger_id: str
    config: dict[str, Any]


def webhook_triggers(definition: Mapping[str, Any]) -> list[WebhookTrigger]:
    """The webhook triggers of a definition, ids defaulted `<type>_<index>`."""
    out = []
    for i, trigger in enumerate(definition.get("triggers") or []):
        if not isinstance(trigger, dict) or trigger.get("type") != "webhook":
            continue
        config = {**WEBHOOK_DEFAULTS, **(trigger.get("config") or {})}
        out.append(WebhookTrigger(str(trigger.get("id") or f"webhook_{i}"), config))
    return out


def signature(secret: str, timestamp: str | None, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`), or of the body alone."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    config: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
) -> str:
    """The delivery id of a genuine delivery; raises for an oversized, unsigned or stale one.

    Size first (nothing else is read of an oversized body), then authenticity, then freshness:
    a stale request learns nothing until it is proven to come from a holder of the secret.
    """
    limit = int(config["max_body_bytes"])
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; this webhook accepts {limit}")
    delivery = headers.get(str(config["delivery_header"]).lower(), "").strip()
    if len(delivery) > MAX_DELIVERY_ID:
        raise ValidationFailed(
            [
                Violation(
                    f"headers.{config['delivery_header']}", f"at most {MAX_DELIVERY_ID} characters"
                )
            ]
        )
    if config["auth"] == "bearer":
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer secret: send `Authorization: Bearer <secret>`")
        if not hmac.compare_digest(token.strip().encode(), secret.encode()):
            raise Unauthenticated("the bearer secret does not match")
        return delivery
    ts_header = str(config["timestamp_header"]).lower()
    sig_header = str(config["signature_header"]).lower()
    timed = config["auth"] != "hmac_body"
    sent = headers.get(sig_header, "").strip()
    stamp = headers.get(ts_header, "").strip() if timed else ""
    candidates = [s.strip() for s in sent.split(",") if s.strip()]
    # The Stripe-style form carries both in one header: `t=<unix>,v1=<hex>[,v1=<hex>]`.
    pairs = [c.partition("=") for c in candidates]
    if timed and any(k == "t" for k, _, _ in pairs):
        stamp = stamp or next(v for k, _, v in pairs if k == "t")
        candidates = [v for k, _, v in pairs if k == "v1"]
    if not sent or (timed and not stamp):
        wanted = f"`{ts_header}` and `{sig_header}` headers" if timed else f"`{sig_header}` header"
        raise Unauthenticated(f"unsigned delivery: send the {wanted}")
    expected = signature(secret, stamp if timed else None, body)
    if not any(
        hmac.compare_digest(c if c.startswith("sha256=") else "sha256=" + c, expected)
        for c in candidates
    ):
        raise Unauthenticated("the signature does not match")
    if not timed:
        return delivery or "sig:" + expected.removeprefix("sha256=")
    try:
        signed_at = int(stamp)
    except ValueError as exc:
        raise ValidationFailed(
            [Violation(f"headers.{ts_header}", "must be a Unix time in seconds")]
        ) from exc
    tolerance = parse_duration(str(config["tolerance"])).total_seconds()
    if abs(now.timestamp() - signed_at) > tolerance:
        raise Unauthenticated(
            f"the signed timestamp is more than {config['tolerance']} from now; "
            "re-sign the delivery with the current time"
        )
    # No delivery id: the signature names this exact signed request, so a replay of it
    # still lands on the same run.
    return delivery or "sig:" + expected.removeprefix("sha256=")
