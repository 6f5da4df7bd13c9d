"""Which client a request comes from, for throttling: the socket's peer, or behind a trusted
proxy the rightmost ``X-Forwarded-For`` hop that is not itself a trusted proxy.

Only hops appended by proxies we trust can be believed: everything left of the first untrusted
hop was written by the client and may be forged, so the walk goes right to left and stops there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN_PEER = "unknown"
IPV6_PREFIX = 64  # one subscriber usually holds a whole /64: keying on /128 would be no limit


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.7"`` → networks (a bare address is a /32 or /128).

    Raises ``ValueError`` naming the first entry that is not a CIDR or an address."""
    networks = []
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not a network such as 10.0.0.0/8 or fd00::/8") from None
    return tuple(networks)


def parse_ip(text: str) -> IPAddress | None:
    """An address, or None. An IPv4 client on a dual-stack socket shows up as ``::ffff:a.b.c.d``:
    it is the IPv4 address it really is."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (an address of the other IP version never does)."""
    return address is not None and any(address in network for network in networks)


def _parse(text: str) -> IPAddress | None:
    """A peer or ``X-Forwarded-For`` hop, which may carry a port."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    return parse_ip(text)


def throttle_key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The key the login throttle counts this client under.

    ``forwarded_for`` are the ``X-Forwarded-For`` header values in the order received; they are
    read only when ``peer`` is in ``trusted``. A hop that is no address ends the walk and is the
    client (it was not written by a trusted proxy that parses addresses)."""
    current = _parse(peer) if peer else None
    if current is None:
        return (peer or UNKNOWN_PEER)[:100]
    if not in_networks(current, trusted):
        return throttle_key(current)
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:
            return hop[:100]
        current = parsed
        if not in_networks(current, trusted):
            break
    return throttle_key(current)
