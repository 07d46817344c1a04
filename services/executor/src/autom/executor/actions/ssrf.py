"""SSRF guard: resolve a host once, refuse non-public addresses unless allow-listed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from autom.executor.errors import StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class SsrfRefused(StepError):
    """The destination is not a public address and is not allow-listed."""

    type_name = "SsrfRefused"
    default_retryable = False


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    packed = int(ip)
    # IPv4-compatible ::a.b.c.d (deprecated, but some stacks still route it).
    if packed >> 32 == 0 and packed > 1:
        return ipaddress.IPv4Address(packed)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses (IPv6 checked with its embedded IPv4)."""
    inner = embedded_ipv4(ip)
    if inner is not None and not is_public(inner):
        return False
    # is_global excludes loopback, RFC 1918, link-local (169.254/16 incl. metadata), CGNAT
    # 100.64/10, unspecified, reserved, ULA fc00::/7 and fe80::/10.
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Policy:
    """What the deployment allows beyond public addresses."""

    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allow_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_lists(cls, cidrs: Sequence[str], hosts: Sequence[str]) -> Policy:
        """Build from settings values; a malformed CIDR fails fast."""
        return cls(
            allow_networks=tuple(ipaddress.ip_network(c, strict=False) for c in cidrs),
            allow_hosts=frozenset(h.lower().rstrip(".") for h in hosts),
        )

    def allows(self, host: str, ip: IPAddress) -> bool:
        """True when the address may be contacted."""
        if host.lower().rstrip(".") in self.allow_hosts:
            return True
        if any(ip in net for net in self.allow_networks):
            return True
        inner = embedded_ipv4(ip)
        if inner is not None and any(inner in net for net in self.allow_networks):
            return True
        return is_public(ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo accepts decimal/octal/hex IPv4 forms)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling inet_aton accepts (2130706433, 0177.0.0.1, 0x7f.1), or None."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):
        return None


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
