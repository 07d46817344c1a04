"""Leading `//` comments of the .proto sources, keyed by fully qualified element name.

Generated `_pb2` modules carry no source info, and the gateway must not need protoc at
run time, so the OpenAPI descriptions come from reading the .proto files themselves.
Keys: `pkg.Message`, `pkg.Message.field`, `pkg.Enum`, `pkg.Enum.VALUE`, `pkg.Service`,
`pkg.Service.Method` (nested messages: `pkg.Outer.Inner`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

_PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;")
_BLOCK = re.compile(r"^(message|enum|service|oneof)\s+(\w+)\s*\{")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(")
_FIELD = re.compile(
    r"^(?:(?:repeated|optional|required)\s+)?(?:map\s*<[^>]*>|[\w.]+)\s+(\w+)\s*=\s*\d+"
)
_ENUM_VALUE = re.compile(r"^(\w+)\s*=\s*-?\d+")
_SKIP = re.compile(r"^(option|reserved|import|syntax|extensions|extend)\b")


def _code_part(line: str) -> tuple[str, str | None]:
    """Split a line into code and a trailing `//` comment, ignoring `//` inside strings."""
    quote: str | None = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif line.startswith("//", i):
            return line[:i], line[i + 2 :].strip()
        i += 1
    return line, None


def _braces(code: str) -> tuple[int, int]:
    """Count `{` and `}` outside string literals."""
    opens = closes = 0
    quote: str | None = None
    for ch in code:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            opens += 1
        elif ch == "}":
            closes += 1
    return opens, closes


def parse_proto_comments(text: str) -> dict[str, str]:
    """Leading comments of every message, field, enum, value, service and rpc in one file."""
    out: dict[str, str] = {}
    package = ""
    # Each scope: (kind, name); names of message/enum/service scopes build the full name.
    scopes: list[tuple[str, str]] = []
    pending: list[str] = []

    def prefix() -> str:
        names = [package] if package else []
        names += [name for kind, name in scopes if kind in ("message", "enum", "service")]
        return ".".join(names)

    def record(name: str) -> None:
        if pending:
            out[f"{prefix()}.{name}" if prefix() else name] = " ".join(pending).strip()

    in_block_comment = False
    for raw in text.splitlines():
        line = raw.strip()
        if in_block_comment:
            if "*/" in line:
                in_block_comment = False
            continue
        if line.startswith("/*"):
            in_block_comment = "*/" not in line
            continue
        if line.startswith("//"):
            pending.append(line[2:].strip())
            continue
        if not line:
            # A blank line detaches a comment from what follows.
            pending = []
            continue
        code, _ = _code_part(line)
        code = code.strip()
        kind = scopes[-1][0] if scopes else ""
        opens, closes = _braces(code)
        pushed = 0
        if m := _PACKAGE.match(code):
            package = m.group(1)
        elif m := _BLOCK.match(code):
            block_kind, name = m.group(1), m.group(2)
            if block_kind == "oneof":
                scopes.append(("oneof", name))
            else:
                record(name)
                scopes.append((block_kind, name))
            pushed = 1
        elif m := _RPC.match(code):
            if kind == "service":
                record(m.group(1))
        elif _SKIP.match(code):
            pass
        else:
            pattern = _FIELD if kind in ("message", "oneof") else _ENUM_VALUE
            if kind in ("message", "oneof", "enum") and (m := pattern.match(code)):
                record(m.group(1))
        # Any other brace (rpc bodies, option literals) is an anonymous scope.
        for _ in range(opens - pushed):
            scopes.append(("other", ""))
        for _ in range(closes):
            if scopes:
                scopes.pop()
        pending = []
    return out


def load_comments(roots: Iterable[Path]) -> dict[str, str]:
    """Comments of every .proto file under the given roots (missing roots are skipped)."""
    out: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.proto")):
            try:
                out.update(parse_proto_comments(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("cannot read %s for descriptions: %s", path, exc)
    return out


def find_proto_root(configured: Path | None, search_from: Iterable[Path]) -> Path | None:
    """The configured proto directory, else the first `protos/` above any search start."""
    if configured is not None:
        return configured if configured.is_dir() else None
    for start in search_from:
        for parent in [start, *start.parents]:
            candidate = parent / "protos"
            if (candidate / "autom" / "api").is_dir():
                return candidate
    return None


# A count whose comment reads "(default N, max M)" states its contract: 0..M. The gateway
# documents it in OpenAPI and enforces it, so HTTP clients get one answer whichever service
# is behind (some clamp, some reject).
_RANGE = re.compile(r"\(default [^,()]+, max ([0-9]+)\)")


def documented_ranges(comments: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """Field full name -> (minimum, maximum) stated in its comment."""
    out: dict[str, tuple[int, int]] = {}
    for name, text in comments.items():
        m = _RANGE.search(text)
        if m:
            out[name] = (0, int(m.group(1)))
    return out


def comment(comments: Mapping[str, str], full_name: str) -> str:
    """The comment of an element, or an empty string."""
    return comments.get(full_name, "")
