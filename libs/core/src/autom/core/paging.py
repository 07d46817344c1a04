"""Opaque, tamper-evident keyset page tokens and page sizes, the same for every List RPC.

A token is the sort key of the last row returned, encrypted and authenticated (Fernet) with
a key derived from the deployment secret, so clients can neither read nor forge one: any
change is a `page_token` violation, never a query with values the service did not write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from autom.core.errors import ValidationFailed, Violation

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_INT64 = 2**63


class _Keys:
    # Replicas of a service share the deployment secret, so a token written by one is read
    # by another; until a server configures it, a random key keeps tokens unforgeable.
    fernet: Fernet | None = None


def configure_page_tokens(secret: bytes) -> None:
    """Derive the page-token key from a service secret (called once when a server starts)."""
    key = hashlib.sha256(b"autom page tokens v1\0" + secret).digest()
    _Keys.fernet = Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> Fernet:
    if _Keys.fernet is None:
        _Keys.fernet = Fernet(base64.urlsafe_b64encode(secrets.token_bytes(32)))
    return _Keys.fernet


def encode_page_token(values: dict[str, Any]) -> str:
    """An opaque cursor holding the sort key of the last row returned."""
    payload = json.dumps(values, default=str, separators=(",", ":")).encode()
    return _fernet().encrypt(payload).decode("ascii")


def _malformed() -> ValidationFailed:
    return ValidationFailed([Violation("page_token", "malformed page token")])


def decode_page_token(
    token: str, *, keys: tuple[str, ...] | Mapping[str, type] = ()
) -> dict[str, Any]:
    """Inverse of encode_page_token; anything malformed or altered is a `page_token` violation.

    `keys` as a mapping also checks each value's type (ints within 64 bits, bools not ints).
    """
    try:
        raw = token.encode("ascii")
        # Only the canonical encoding: lenient base64 would ignore bytes appended to a token.
        if base64.urlsafe_b64encode(base64.urlsafe_b64decode(raw)) != raw:
            raise _malformed()
        value = json.loads(_fernet().decrypt(raw))
    except (InvalidToken, ValueError, UnicodeError):
        raise _malformed() from None
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise _malformed()
    if isinstance(keys, Mapping):
        for key, kind in keys.items():
            item = value[key]
            if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
                raise _malformed()
            if isinstance(item, int) and not -_INT64 <= item < _INT64:
                raise _malformed()
            if isinstance(item, str) and "\0" in item:
                raise _malformed()
    return value


def page_size(requested: int, *, field: str = "page_size") -> int:
    """Default 50, at most 500; negative or larger is a violation, not a silent cap."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise ValidationFailed([Violation(field, f"must be between 0 and {MAX_PAGE_SIZE}")])
    return requested or DEFAULT_PAGE_SIZE
