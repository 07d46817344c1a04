"""Which network destinations an outbound request may reach: the one SSRF policy.

Public unicast addresses, plus what the deployment allow-lists (`AUTOM_HTTP_ALLOW_CIDRS`,
`AUTOM_HTTP_ALLOW_HOSTS`). The executor applies it to every resolved address of a request;
definitions applies it to the literal hosts of `http_request` URLs at validation time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


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


# Cloud metadata services by name (they resolve to link-local addresses).
_METADATA_NAMES = frozenset({"metadata.google.internal", "instance-data.ec2.internal"})


def is_local_name(host: str) -> bool:
    """True for `localhost` and names under `.localhost` (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def literal_host(url: str) -> str | None:
    """The host of a URL whose scheme and host are written out (template parts after them).

    None when the host is templated (or the URL has no `scheme://host`): it cannot be known
    before a run.
    """
    cut = len(url)
    for marker in ("{{", "{%", "{#"):
        at = url.find(marker)
        if at != -1:
            cut = min(cut, at)
    scheme, sep, rest = url[:cut].partition("://")
    if not sep or not scheme:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if cut < len(url) and len(authority) == len(rest):
        # The template starts inside the authority: only a port may follow a complete host.
        hostport = authority.rsplit("@", 1)[-1]
        bracketed = hostport.startswith("[")
        if not ((bracketed and "]:" in hostport) or (not bracketed and ":" in hostport)):
            return None
    try:
        host = urlsplit(f"{scheme}://{authority}").hostname
    except ValueError:
        return None
    return host or None


def refused_reason(host: str, policy: Policy) -> str | None:
    """Why a literal host is refused before any lookup, or None when it may be tried."""
    if host.lower().rstrip(".") in policy.allow_hosts:
        return None
    literal = parse_literal(host)
    if literal is not None:
        if policy.allows(host, literal):
            return None
        return f"{literal} is not a public address (loopback, private, link-local or metadata)"
    if is_local_name(host) and not any(
        policy.allows(host, ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")
    ):
        return f"{host!r} names this machine"
    if host.lower().rstrip(".") in _METADATA_NAMES and not policy.allows(
        host, ipaddress.ip_address("169.254.169.254")
    ):
        return f"{host!r} names a cloud metadata service"
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The destination is not a public address and is not allow-listed."""


class Unresolvable(Exception):
    """The host name resolved to no address."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo accepts decimal/octal/hex IPv4 forms)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def pinned_address(
    host: str, port: int, policy: Policy, resolver: Resolver = system_resolver
) -> str:
    """The one address to connect to; every address the host resolves to must pass the policy."""
    if not host:
        raise Refused("URL has no host")
    literal = parse_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = await resolver(host, port)
        except OSError as exc:
            raise Unresolvable(f"cannot resolve {host!r}: {exc}") from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
        if not addresses:
            raise Unresolvable(f"{host!r} resolved to nothing")
    refused = [a for a in addresses if not policy.allows(host, a)]
    if refused:
        # One bad answer refuses the host: DNS could hand the bad one to a later connect.
        raise Refused(f"refusing to connect to {host!r}: {refused[0]} is not a public address")
    return str(addresses[0])
