"""SSRF guard for outbound webhooks: resolve once, refuse non-public addresses, connect to the checked IP.

:func:`resolve_target` parses an endpoint URL, resolves its host with ``getaddrinfo`` exactly once and refuses
the URL if ANY resolved address is private, loopback, link-local, multicast, reserved, unspecified, shared
(100.64/10) or an IPv4-mapped/NAT64 form of those — unless the host (name, IP or a CIDR containing the IP) is
listed in ``settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS``. The caller then connects to the returned IP (with the
original ``Host`` header and TLS SNI/certificate name), so a second DNS answer cannot redirect the request
(no time-of-check/time-of-use gap). Sources: OWASP SSRF Prevention Cheat Sheet; RFC 6890 special-purpose
address registries.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeTarget(Exception):
    """The URL may not be called (bad scheme, unresolvable, or a non-public address)."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``ip``:``port``; send ``Host: host_header``; TLS name ``hostname``."""

    scheme: str
    hostname: str
    ip: str
    port: int
    path: str
    host_header: str

    @property
    def connect_url(self) -> str:
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}{self.path}"


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 embeds an IPv4 address
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in ipaddress.IPv4Network("100.64.0.0/10"):  # carrier-grade NAT (shared address space)
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _allowed_private(hostname: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for entry in getattr(settings, "WEBHOOK_ALLOWED_PRIVATE_HOSTS", []) or []:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == hostname.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def resolve_target(url: str, *, resolver=socket.getaddrinfo) -> Target:
    """Check ``url`` and pick the address to connect to; raises :class:`UnsafeTarget` with the reason."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("only http(s) URLs are allowed")
    hostname = parts.hostname
    if not hostname:
        raise UnsafeTarget("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget("invalid port") from exc
    if scheme == "http" and not getattr(settings, "WEBHOOK_ALLOW_HTTP", False) and not _listed_host(hostname):
        raise UnsafeTarget("plain http is not allowed; use https")
    try:
        infos = resolver(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"{hostname} does not resolve to a public address") from exc
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not _is_public(ip) and not _allowed_private(hostname, ip):
            raise UnsafeTarget(f"{hostname} does not resolve to a public address")  # never say which: no DNS oracle
        addresses.append(ip)
    if not addresses:
        raise UnsafeTarget(f"{hostname} does not resolve to a public address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if scheme == "https" else 80
    host_header = hostname if port == default_port else f"{hostname}:{port}"
    if ":" in hostname:
        host_header = f"[{hostname}]" if port == default_port else f"[{hostname}]:{port}"
    return Target(scheme=scheme, hostname=hostname, ip=str(addresses[0]), port=port, path=path, host_header=host_header)


def _listed_host(hostname: str) -> bool:
    """True if the host (name or literal IP) is itself in WEBHOOK_ALLOWED_PRIVATE_HOSTS (lets tests use http)."""
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        return hostname.lower() in [h.strip().lower() for h in settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS]
    return _allowed_private(hostname, ip)
