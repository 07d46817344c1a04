"""SSRF guard of the executor's steps: `autom.core.netpolicy`'s pinned address as step errors.

The policy itself (public addresses, allow-lists, IP literal spellings, resolving once) is
`autom.core.netpolicy`, shared with definitions and the MCP client.
"""

from __future__ import annotations

from autom.core.netpolicy import (
    IPAddress,
    Policy,
    Refused,
    Resolver,
    Unresolvable,
    embedded_ipv4,
    is_public,
    parse_literal,
    pinned_address,
    system_resolver,
)
from autom.executor.errors import StepError

__all__ = [
    "IPAddress",
    "Policy",
    "Resolver",
    "SsrfRefused",
    "embedded_ipv4",
    "is_public",
    "parse_literal",
    "resolve_pinned",
    "system_resolver",
]


class SsrfRefused(StepError):
    """The destination is not a public address and is not allow-listed."""

    type_name = "SsrfRefused"
    default_retryable = False


async def resolve_pinned(
    host: str, port: int, policy: Policy, resolver: Resolver = system_resolver
) -> str:
    """The one address to connect to; every resolved address must pass the policy."""
    try:
        return await pinned_address(host, port, policy, resolver)
    except Refused as exc:
        raise SsrfRefused(str(exc)) from exc
    except Unresolvable as exc:
        raise StepError(str(exc), type_name="DnsError") from exc
