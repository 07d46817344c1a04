"""Checks every request message gets before a handler sees it (bad bytes are the caller's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from autom.core.errors import ValidationFailed, Violation

_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST = "google.protobuf.ListValue"
_TIMESTAMP = "google.protobuf.Timestamp"
# 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, the range protobuf and datetime accept.
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799
_NUL = "must not contain a NUL character"
_MAX_REPORTED = 20


class Undecodable:
    """Stands for a request whose bytes did not parse (e.g. a string that is not UTF-8)."""

    def __init__(self, error: str) -> None:
        self.error = error


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Wrap a request deserializer so unparsable bytes reach the handler as `Undecodable`.

    gRPC answers a deserializer exception with a bare INTERNAL; this lets the interceptor
    answer INVALID_ARGUMENT instead.
    """
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            return Undecodable(str(exc) or type(exc).__name__)

    return deserialize


def check_request(request: Any) -> None:
    """Raise ValidationFailed for undecodable bytes, a NUL character in any string field or
    a Timestamp outside years 1-9999.

    NUL is refused everywhere: PostgreSQL text cannot hold it, and no name, template or id
    needs it. Violations name the field (`definition.plan[0].params.url`).
    """
    if isinstance(request, Undecodable):
        raise ValidationFailed(
            [Violation("request", "the request is not a valid message (strings must be UTF-8)")]
        )
    if isinstance(request, Message):
        found = []
        for path, problem in _problems(request, ""):
            found.append(Violation(path, problem))
            if len(found) >= _MAX_REPORTED:
                break
        if found:
            raise ValidationFailed(found)


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def _problems(message: Message, base: str) -> Iterator[tuple[str, str]]:
    full_name = message.DESCRIPTOR.full_name
    if full_name == _TIMESTAMP:
        seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
        if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos <= 999_999_999):
            yield base, "must be a timestamp between years 1 and 9999"
        return
    if full_name == _STRUCT:
        for key, value in message.fields.items():  # type: ignore[attr-defined]
            yield from _scalar_or_message(key, _join(base, _printable(key)))
            yield from _problems(value, _join(base, _printable(key)))
        return
    if full_name == _LIST:
        for i, value in enumerate(message.values):  # type: ignore[attr-defined]
            yield from _problems(value, f"{base}[{i}]")
        return
    for field, value in message.ListFields():
        path = _join(base, field.name) if full_name != _VALUE else base
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                item_path = f"{path}[{_printable(key)}]"
                yield from _scalar_or_message(key, item_path)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _problems(item, item_path)
                else:
                    yield from _scalar_or_message(item, item_path)
        elif field.is_repeated:
            for i, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _problems(item, f"{path}[{i}]")
                else:
                    yield from _scalar_or_message(item, f"{path}[{i}]")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _problems(value, path)
        else:
            yield from _scalar_or_message(value, path)


def _printable(key: Any) -> str:
    return str(key).replace("\0", "\\0")


def _scalar_or_message(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str) and "\0" in value:
        yield path, _NUL
