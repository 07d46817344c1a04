"""SSRF guard: resolve a host once, refuse non-public addresses unless allow-listed.

The policy itself (public addresses, allow-lists, IP literal spellings) is `autom.core.netpolicy`,
shared with definitions' validation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from autom.core.netpolicy import IPAddress, Policy, embedded_ipv4, is_public, parse_literal
from autom.executor.errors import StepError

__all__ = [
    "IPAddress",
    "Policy",
    "SsrfRefused",
    "embedded_ipv4",
    "is_public",
    "parse_literal",
    "resolve_pinned",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]


class SsrfRefused(StepError):
    """The destination is not a public address and is not allow-listed."""

    type_name = "SsrfRefused"
    default_retryable = False


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo accepts decimal/octal/hex IPv4 forms)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_pinned(
    host: str, port: int, policy: Policy, resolver: Resolver = system_resolver
) -> str:
    """The one address to connect to; every resolved address must pass the policy."""
    if not host:
        raise SsrfRefused("URL has no host")
    literal = parse_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = await resolver(host, port)
        except OSError as exc:
            raise StepError(
                f"cannot resolve {host!r}: {exc}", retryable=True, type_name="DnsError"
            ) from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
        if not addresses:
            raise StepError(f"{host!r} resolved to nothing", type_name="DnsError")
    refused = [a for a in addresses if not policy.allows(host, a)]
    if refused:
        # One bad answer refuses the host: DNS could hand the bad one to a later connect.
        raise SsrfRefused(f"refusing to connect to {host!r}: {refused[0]} is not a public address")
    return str(addresses[0])
