"""redact: masking secret values in nested values."""

from __future__ import annotations

from autom.templating import redact

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
