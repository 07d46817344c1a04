"""The reply protocol parser."""

from __future__ import annotations

import pytest

from autom.drafter.domain.protocol import ReplyParseError, parse_reply


def test_definition_reply_with_message() -> None:
    reply = parse_reply('{"definition": {"name": "x", "plan": []}, "message": " note "}')
    assert reply.definition == {"name": "x", "plan": []}
    assert reply.message == "note"


def test_code_fenced_and_prose_wrapped_replies_are_accepted() -> None:
    assert parse_reply('```json\n{"questions": ["When?"]}\n```').questions == ["When?"]
    wrapped = 'Here you go: {"out_of_scope": "chit-chat"} Hope it helps.'
    assert parse_reply(wrapped).out_of_scope == "chit-chat"


def test_bare_envelope_counts_as_a_definition() -> None:
    reply = parse_reply('{"name": "x", "plan": [{"id": "a", "action": "log"}]}')
    assert reply.definition is not None and reply.definition["name"] == "x"


def test_single_question_string_becomes_a_list() -> None:
    assert parse_reply('{"questions": "Which URL?"}').questions == ["Which URL?"]


def test_empty_out_of_scope_reason_gets_a_default() -> None:
    assert parse_reply('{"out_of_scope": ""}').out_of_scope


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Sure, I will do that.",
        "[1, 2]",
        '{"definition": "not an object"}',
        '{"questions": []}',
        '{"answer": 42}',
        '{"definition": {"name": "x",',
    ],
)
def test_protocol_violations_raise(text: str) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(text)
