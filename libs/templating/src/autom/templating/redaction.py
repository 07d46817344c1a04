"""Masking secret values in logs, step records and error messages.

A secret is masked as written and in the forms the template filters and common encodings
turn it into: any letter case (`upper`, `lower`, `title`, `capitalize`), reversed, base64
(standard or URL-safe, padded or not, also inside a longer encoded text such as HTTP Basic
credentials), hex, URL-encoded, JSON-escaped and HTML-escaped. A value that is computed
from a secret in other ways (sliced, replaced, hashed) is not recognised: templates that
send secrets should send them as they are.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import markupsafe

# Derived forms of shorter secrets would mask unrelated text.
MIN_DERIVED_LENGTH = 6
# An encoded fragment shorter than this would match unrelated text.
_MIN_FRAGMENT = 8


def _b64_fragments(raw: bytes) -> Iterator[str]:
    # The secret's bytes may start at any offset modulo 3 of a larger encoded text; keep
    # the characters that depend on the secret's bytes only.
    for offset in range(3):
        start = -(-8 * offset // 6)
        end = 8 * (offset + len(raw)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            yield encoded[start:end]
            if offset == 0:
                yield encoded
                yield encoded.rstrip("=")


def _json_forms(secret: str) -> Iterator[str]:
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        yield escaped
        # Jinja's htmlsafe JSON form.
        yield (
            escaped.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("'", "\\u0027")
        )


def _variants(secret: str) -> tuple[set[str], set[str]]:
    """(case-insensitive forms, case-sensitive forms) of one secret."""
    folded = {secret}
    exact: set[str] = set()
    if len(secret) < MIN_DERIVED_LENGTH:
        return folded, exact
    raw = secret.encode()
    folded |= {
        secret[::-1],
        raw.hex(),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret, safe="/"),
        urllib.parse.quote_plus(secret, safe=""),
        urllib.parse.quote_plus(secret, safe="/"),
        html.escape(secret, quote=True),
        html.escape(secret, quote=False),
        str(markupsafe.escape(secret)),
        *_json_forms(secret),
        *_json_forms(secret.upper()),
        *_json_forms(secret.lower()),
    }
    exact |= {f for f in _b64_fragments(raw) if len(f) >= _MIN_FRAGMENT}
    return folded, exact


@functools.lru_cache(maxsize=64)
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    alternatives: dict[str, str] = {}
    for value in values:
        folded, exact = _variants(value)
        for form in exact:
            alternatives.setdefault(form, re.escape(form))
        for form in folded:
            alternatives[form] = f"(?i:{re.escape(form)})"
    # Longest first, so a secret containing another is masked whole.
    ordered = sorted(alternatives, key=lambda form: (-len(form), form))
    return re.compile("|".join(alternatives[form] for form in ordered))


def redact(value: Any, secrets: Mapping[str, str], mask: str = "***") -> Any:
    """Copy of a JSON-like value with every occurrence of a secret value in its strings masked.

    Dict keys are kept as they are; empty and non-string secret values are ignored.
    """
    values = frozenset(v for v in secrets.values() if isinstance(v, str) and v)
    if not values:
        return value
    pattern = _pattern(values)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(lambda _: mask, item)
        if isinstance(item, dict):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list):
            return [walk(child) for child in item]
        if isinstance(item, tuple):
            return tuple(walk(child) for child in item)
        return item

    return walk(value)
