"""The reply protocol: the model answers one JSON object, parsed here into a typed reply.

Exactly one of:
  {"definition": {...}, "message": "optional one-line note"}
  {"questions": ["...", ...]}
  {"out_of_scope": "why this is not an automation request"}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
# Keys that only an envelope has: a model that forgets the wrapper still drafted something.
_ENVELOPE_KEYS = {"plan", "triggers"}


class ReplyParseError(ValueError):
    """The reply is not one JSON object following the protocol."""


@dataclass(frozen=True)
class Reply:
    """What the model answered: a definition, questions, or out of scope."""

    definition: dict[str, Any] | None = None
    questions: list[str] = field(default_factory=list)
    out_of_scope: str | None = None
    message: str = ""


def _load_object(text: str) -> dict[str, Any]:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        # Some models wrap the object in prose; take the outermost braces once.
        start, end = stripped.find("{"), stripped.rfind("}")
        if start < 0 or end <= start:
            raise ReplyParseError("the reply holds no JSON object") from None
        try:
            value = json.loads(stripped[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ReplyParseError(f"the reply is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ReplyParseError("the reply must be one JSON object")
    return value


def parse_reply(text: str | None) -> Reply:
    """Parse a model reply; raise ReplyParseError when it breaks the protocol."""
    if not text or not text.strip():
        raise ReplyParseError("the reply is empty")
    obj = _load_object(text)
    message = obj.get("message")
    note = message.strip() if isinstance(message, str) else ""
    if "definition" in obj:
        definition = obj["definition"]
        if not isinstance(definition, dict):
            raise ReplyParseError('"definition" must be a JSON object')
        return Reply(definition=definition, message=note)
    if "questions" in obj:
        raw = obj["questions"]
        items = raw if isinstance(raw, list) else [raw]
        questions = [str(q).strip() for q in items if str(q).strip()]
        if not questions:
            raise ReplyParseError('"questions" must be a non-empty list of strings')
        return Reply(questions=questions, message=note)
    if "out_of_scope" in obj:
        reason = obj["out_of_scope"]
        text_reason = reason.strip() if isinstance(reason, str) else ""
        return Reply(out_of_scope=text_reason or "This is not a request for an automation.")
    if _ENVELOPE_KEYS & obj.keys():
        return Reply(definition=obj)
    raise ReplyParseError(
        'the reply must have one of the keys "definition", "questions" or "out_of_scope"'
    )
