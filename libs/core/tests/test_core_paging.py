"""Page tokens: opaque, authenticated, typed; page sizes."""

from __future__ import annotations

import base64
import json

import pytest

from autom.core import paging
from autom.core.errors import ValidationFailed


@pytest.fixture(autouse=True)
def _key() -> None:
    paging.configure_page_tokens(b"x" * 32)


def _refused(token: str, **kw: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        paging.decode_page_token(token, **kw)  # type: ignore[arg-type]
    assert [v.field for v in info.value.violations] == ["page_token"]


def test_a_token_round_trips_and_shows_nothing_of_its_cursor() -> None:
    token = paging.encode_page_token({"n": "secret-name", "i": 7})
    assert "secret-name" not in token
    assert b"secret-name" not in base64.urlsafe_b64decode(token)
    assert paging.decode_page_token(token, keys={"n": str, "i": int}) == {
        "n": "secret-name",
        "i": 7,
    }


def test_altered_appended_or_forged_tokens_are_refused() -> None:
    token = paging.encode_page_token({"v": 3})
    for i in (0, 10, len(token) // 2, len(token) - 3):
        swapped = "A" if token[i] != "A" else "B"
        _refused(token[:i] + swapped + token[i + 1 :], keys={"v": int})
    _refused(token + "x", keys={"v": int})
    _refused(token + "AAAA", keys={"v": int})
    _refused(base64.urlsafe_b64encode(json.dumps({"v": 3}).encode()).decode(), keys={"v": int})
    _refused("", keys={"v": int})
    _refused("é", keys={"v": int})


def test_a_token_from_another_deployment_key_is_refused() -> None:
    token = paging.encode_page_token({"v": 3})
    paging.configure_page_tokens(b"y" * 32)
    _refused(token, keys={"v": int})


@pytest.mark.parametrize(
    "values", [{"v": "3"}, {"v": True}, {"v": 2**70}, {"v": None}, {"w": 1}, {"v": 1.5}]
)
def test_values_of_the_wrong_type_or_range_are_refused(values: dict[str, object]) -> None:
    _refused(paging.encode_page_token(values), keys={"v": int})
