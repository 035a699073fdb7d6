"""Which URLs the provider may fetch: a pure decision, made before any connection (and per redirect).

Video and last-frame URLs come from the API's replies, so a compromised upstream or a proxy could
point a worker at a cloud metadata service or an internal host. The hook resolves a URL's host once,
asks :meth:`UrlPolicy.refusal` about every address, and connects only to an address it checked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

SCHEMES = ("http", "https")
# Names and addresses of cloud instance-metadata services (AWS, GCP, Azure, Alibaba, ECS, Oracle).
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
# Private ranges: RFC 1918, carrier-grade NAT (RFC 6598) and IPv6 unique-local.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress:
    """An address, an IPv4-mapped IPv6 one (``::ffff:169.254.169.254``) read as the IPv4 it maps."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def is_internal(text: str) -> bool:
    """Loopback or a private range: the connection's own host being one allows such URLs too."""
    address = _address(text)
    return address.is_loopback or any(address in net for net in PRIVATE_NETWORKS)


@dataclass(frozen=True)
class UrlPolicy:
    """Whether loopback and private addresses may be fetched; everything else is decided by rule.

    :param allow_internal: True when the connection's own host (the API base URL) is loopback or
        private (the emulator, an internal proxy), or its extra sets ``allow_private_urls``.
    """

    allow_internal: bool = False

    @classmethod
    def for_connection(cls, api_addresses: Iterable[str], allow_private_urls: bool) -> UrlPolicy:
        """The policy of a connection whose API host resolved to ``api_addresses``."""
        return cls(allow_private_urls or any(is_internal(a) for a in api_addresses))

    def refusal(self, scheme: str, host: str, addresses: Iterable[str] | None = None) -> str | None:
        """None when every address may be fetched, else the rule that refuses the URL.

        :param scheme: the URL's scheme.
        :param host: the URL's host name or address (no port, no brackets).
        :param addresses: every address ``host`` resolved to. Default None: check scheme and name only
            (before resolving).
        """
        if scheme.lower() not in SCHEMES:
            return f"scheme {scheme or 'none'!r} is not allowed: only http and https"
        name = host.lower().rstrip(".")
        if not name:
            return "the URL has no host"
        if name in METADATA_NAMES:
            return "it is a cloud metadata name"
        if addresses is None:
            return None
        found = list(addresses)
        if not found:
            return "it resolved to no address"
        return next((reason for reason in map(self._address_refusal, found) if reason), None)

    def _address_refusal(self, text: str) -> str | None:
        try:
            address = _address(text)
        except ValueError:
            return f"{text!r} is not an IP address"
        if address in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata address"
        for kind in ("unspecified", "link_local", "multicast"):
            if getattr(address, f"is_{kind}"):
                return f"{address} is a {kind.replace('_', '-')} address"
        if is_internal(text):
            if self.allow_internal:
                return None
            kind = "loopback" if address.is_loopback else "private"
            return (
                f"{address} is a {kind} address (allowed only when the connection's own host is one, "
                "or its extra sets allow_private_urls)"
            )
        if address.is_reserved or not address.is_global:
            return f"{address} is a reserved address"
        return None
