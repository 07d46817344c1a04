"""`POST /v1/hooks/{hook_id}`: a webhook delivery passed to the executor as raw bytes.

The one route that is not transcoded from JSON: a signature covers the exact body, so the
gateway forwards the bytes, the headers and the query untouched and verifies nothing itself
(it holds no key; the definitions service checks the signature for the executor).
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.core.registry import WEBHOOK_MAX_BODY_BYTES

HOOK_PREFIX = "/v1/hooks/"
HOOK_RPC = "/autom.api.executor.v1.ExecutorService/ReceiveWebhook"
_HOOK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def hook_id_of(path: str) -> str | None:
    """The hook id of a `/v1/hooks/<id>` path; None for any other path."""
    if not path.startswith(HOOK_PREFIX):
        return None
    return path[len(HOOK_PREFIX) :]


def valid_hook_id(hook_id: str) -> bool:
    """True when the id could have been issued (anything else is answered 404 unasked)."""
    return bool(_HOOK_ID.match(hook_id))


def body_limit(gateway_limit: int) -> int:
    """No trigger accepts more than WEBHOOK_MAX_BODY_BYTES; the gateway stops reading there."""
    return min(gateway_limit, WEBHOOK_MAX_BODY_BYTES)


def request(
    hook_id: str, headers: Any, query: list[tuple[str, str]], body: bytes
) -> epb.ReceiveWebhookRequest:
    """The ReceiveWebhook request of one delivery (last value wins for repeated names)."""
    return epb.ReceiveWebhookRequest(
        hook_id=hook_id,
        headers={k.lower(): v for k, v in headers.items()},
        query=dict(query),
        body=body,
    )


def reason_of(status: status_pb2.Status) -> str:
    """The ErrorInfo reason of a status, or ''."""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def http_of(status: status_pb2.Status, default: int) -> int:
    """413 for a body over the trigger's limit; otherwise the usual mapping."""
    if status.code == code_pb2.RESOURCE_EXHAUSTED and reason_of(status) == "payload_too_large":
        return 413
    return default


def unary(channel: grpc.aio.Channel) -> Any:
    """The ReceiveWebhook multicallable on the executor's channel."""
    return channel.unary_unary(
        HOOK_RPC,
        request_serializer=epb.ReceiveWebhookRequest.SerializeToString,
        response_deserializer=epb.ReceiveWebhookResponse.FromString,
    )
