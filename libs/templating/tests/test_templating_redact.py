"""redact: masking secret values in nested values."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable

import pytest

from autom.templating import redact, render_value

SECRETS = {"TOKEN": "tok-123", "LONG": "tok-123-extended", "EMPTY": "", "PIN": "42"}


def test_redact_masks_secret_values_in_nested_strings() -> None:
    value = {
        "url": "https://x/?t=tok-123&u=tok-123",
        "headers": {"Authorization": "Bearer tok-123-extended"},
        "list": ["42", "no secret", 42, None, ("tok-123",)],
        "tok-123": "keys are kept",
    }
    assert redact(value, SECRETS) == {
        "url": "https://x/?t=***&u=***",
        "headers": {"Authorization": "Bearer ***"},
        "list": ["***", "no secret", 42, None, ("***",)],
        "tok-123": "keys are kept",
    }


def test_redact_prefers_the_longest_secret_and_ignores_empty_ones() -> None:
    assert redact("a tok-123-extended b", SECRETS) == "a *** b"
    assert redact("", SECRETS) == ""
    assert redact("abc", {"EMPTY": ""}) == "abc"


def test_redact_custom_mask_is_literal_and_input_is_not_mutated() -> None:
    value = {"a": ["x tok-123"]}
    assert redact(value, SECRETS, mask=r"[\1]") == {"a": [r"x [\1]"]}
    assert value == {"a": ["x tok-123"]}


def test_redact_treats_regex_characters_in_secrets_literally() -> None:
    assert redact("p4$$.w*rd and p4$$Xw*rd", {"P": "p4$$.w*rd"}) == "*** and p4$$Xw*rd"


SECRET = {"API_KEY": "Sk-Live/9x&Q<z'42"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ secrets.API_KEY }}",
        "{{ secrets.API_KEY | upper }}",
        "{{ secrets.API_KEY | lower }}",
        "{{ secrets.API_KEY | title }}",
        "{{ secrets.API_KEY | capitalize }}",
        "{{ secrets.API_KEY | reverse }}",
        "{{ secrets.API_KEY | upper | reverse }}",
        "{{ secrets.API_KEY | b64encode }}",
        "{{ ('user:' ~ secrets.API_KEY) | b64encode }}",
        "{{ ('ab' ~ secrets.API_KEY ~ 'tail') | b64encode }}",
        "{{ secrets.API_KEY | urlencode }}",
        "{{ {'k': secrets.API_KEY} | urlencode }}",
        "{{ secrets.API_KEY | tojson }}",
        "{{ {'k': secrets.API_KEY} | tojson }}",
        "{{ secrets.API_KEY | e }}",
        "{{ secrets.API_KEY | string }}",
    ],
)
def test_redact_masks_what_template_filters_derive_from_a_secret(template: str) -> None:
    rendered = str(render_value(f"x {template} y", {"secrets": SECRET}, path="t"))
    masked = redact(rendered, SECRET)
    assert "***" in masked
    for fragment in _tell_tales(SECRET["API_KEY"]):
        assert fragment not in masked, (template, rendered, masked)


def _tell_tales(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret.lower(),
        secret.upper(),
        secret[::-1].lower(),
        secret[::-1].upper(),
        base64.b64encode(raw).decode()[:16],
        base64.b64encode(b"user:" + raw).decode()[8:20],
        base64.b64encode(b"ab" + raw + b"tail").decode()[4:20],
        urllib.parse.quote(secret, safe=""),
        "Sk-Live",
    ]


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
        lambda s: base64.urlsafe_b64encode(b"user:" + s.encode()).decode().rstrip("="),
        lambda s: s.encode().hex(),
        lambda s: s.encode().hex().upper(),
        lambda s: urllib.parse.quote(s, safe=""),
        lambda s: urllib.parse.quote_plus(s),
        lambda s: json.dumps(s)[1:-1],
        lambda s: json.dumps(s.upper())[1:-1],
        lambda s: s.swapcase(),
    ],
    ids=[
        "b64",
        "b64-unpadded",
        "b64-urlsafe",
        "b64-urlsafe-unpadded",
        "b64-urlsafe-inside",
        "hex",
        "hex-upper",
        "url",
        "url-plus",
        "json",
        "json-upper",
        "swapcase",
    ],
)
def test_redact_masks_encoded_forms_of_a_secret(encode: Callable[[str], str]) -> None:
    secret = 'pä ss"wörd/+?=\\x'
    encoded = encode(secret)
    assert redact(f"<{encoded}>", {"S": secret}).count("***") == 1
    # At most a few trailing characters of a partially aligned base64 group stay visible.
    assert len(redact(encoded, {"S": secret})) < 12


def test_redact_leaves_derived_forms_of_very_short_secrets_alone() -> None:
    assert redact("24 and 42", {"PIN": "42"}) == "24 and ***"
