"""Who is the client? Forwarded headers are believed only from proxies listed in TRUSTED_PROXIES.

`X-Forwarded-For` is a list every hop appends to, so only its right-hand end was written by machines
we trust: walk it from the right, skipping our own proxies, and the first address that is not one of
them is the client. Anything further left was supplied by the client and may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN_CLIENT = "unknown"


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    # "[2001:db8::1]:443" and "203.0.113.7:1234" appear in the wild; the port is not part of the client.
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers") or [] if key == name]


class TrustedProxies:
    """The proxies (IPs or CIDRs) whose forwarded headers describe the real client."""

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network") from exc
        self.networks = tuple(networks)

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        ip = _parse_ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def peer(self, scope: Scope) -> str | None:
        client = scope.get("client")
        return str(client[0]) if client else None

    def client_ip(self, scope: Scope) -> str:
        """The client address: the direct peer, or the right-most untrusted X-Forwarded-For hop."""
        peer = self.peer(scope)
        if not self.trusts(peer):
            return peer or UNKNOWN_CLIENT
        hops = [hop.strip() for value in _header_values(scope, b"x-forwarded-for") for hop in value.split(",")]
        nearest_trusted = peer or UNKNOWN_CLIENT
        for hop in reversed([hop for hop in hops if hop]):
            ip = _parse_ip(hop)
            if ip is None:
                # Garbage in the chain: everything from here leftwards is unverifiable.
                return nearest_trusted
            if not any(ip in network for network in self.networks):
                return str(ip)
            nearest_trusted = str(ip)
        return nearest_trusted

    def scheme(self, scope: Scope) -> str:
        """`http` or `https` as the client saw it (X-Forwarded-Proto from a trusted proxy only)."""
        scheme = str(scope.get("scheme", "http"))
        if self.trusts(self.peer(scope)):
            forwarded = _header_values(scope, b"x-forwarded-proto")
            if forwarded:
                # The right-most value was set by the proxy nearest to us.
                last = forwarded[-1].split(",")[-1].strip().lower()
                if last in ("http", "https"):
                    return last
        if scheme == "ws":
            return "http"
        if scheme == "wss":
            return "https"
        return scheme
