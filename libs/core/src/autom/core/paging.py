"""Opaque keyset page tokens and page sizes, the same for every List RPC."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from autom.core.errors import ValidationFailed, Violation

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def encode_page_token(values: dict[str, Any]) -> str:
    """An opaque cursor holding the sort key of the last row returned."""
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_page_token(token: str, *, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Inverse of encode_page_token; anything malformed is a `page_token` violation."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        value = None
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise ValidationFailed([Violation("page_token", "malformed page token")])
    return value


def page_size(requested: int, *, field: str = "page_size") -> int:
    """Default 50, at most 500; negative or larger is a violation, not a silent cap."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise ValidationFailed([Violation(field, f"must be between 0 and {MAX_PAGE_SIZE}")])
    return requested or DEFAULT_PAGE_SIZE
