"""Which addresses the channels app may connect to: the public internet, and the networks a site
lists in ``CHANNELS_ALLOWED_PRIVATE_NETWORKS``, nothing else (pure logic: no Django).

A destination's URL is typed in the admin by someone who is not necessarily a superuser, and a
worker then sends requests to it from inside the site's network: without this, a URL could make
the worker talk to the cloud metadata service (169.254.169.254), Redis on 127.0.0.1:6379 or an
internal admin service. :mod:`tailored_channels.outbound` resolves every host, asks
:func:`refusal` about each address, and connects only to an address it accepted.
"""

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes that carry an IPv4 address a router or the kernel may reach in its place.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: inside a provider
# Cloud metadata services: never worth allowing (system check tailored_channels.E004).
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``["10.0.0.0/8", "::1"]`` as networks (a bare address is a network of one); raises
    ``ValueError`` or ``TypeError`` for anything else."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
        raise TypeError("a list of addresses or networks")
    return tuple(ipaddress.ip_network(str(value), strict=False) for value in values)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any (IPv4-mapped ``::ffff:a.b.c.d``,
    NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:aabb:ccdd::``, Teredo's client)."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def kind(address: IPAddress) -> str | None:
    """What makes ``address`` unfit for a destination (``"loopback"``, ``"private"``, ...), or
    ``None`` for a public unicast address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        found = kind(inner)
        return f"{found} (IPv4 {inner} inside IPv6)" if found else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("shared (carrier-grade NAT)", address.version == 4 and address in _SHARED),
        ("site-local", address.version == 6 and address.is_site_local),
        ("non-public", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def allowed(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether ``address`` (or the IPv4 address it maps) is inside one of ``networks``."""
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(a in n for a in candidates for n in networks if a.version == n.version)


def refusal(address: IPAddress, networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why the channels app must not connect to ``address``, or ``None`` when it may: a public
    address, or one inside the site's allowed private ``networks``."""
    if allowed(address, networks):
        return None
    found = kind(address)
    return f"{address} is a {found} address" if found else None


def broad(network: IPNetwork) -> str | None:
    """Why allowing ``network`` defeats the protection (for the system check), or ``None``."""
    if network.prefixlen == 0:
        return f"{network} allows every address"
    for address in METADATA:
        if address.version == network.version and address in network:
            return f"{network} includes the cloud metadata service {address}"
    return None
