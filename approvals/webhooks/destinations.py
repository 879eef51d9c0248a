"""Where webhooks may go: the operator's allow-list of hosts and networks."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Destinations:
    """Allowed hosts (``example.com``, ``.example.com`` for subdomains) and networks."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = field(default=())

    @property
    def open(self) -> bool:
        """True when nothing is configured: every destination is allowed."""
        return not (self.hosts or self.suffixes or self.networks)

    def permits(self, host: str, addresses: list[str]) -> bool:
        """Tell whether a host (with the addresses it resolves to) may receive webhooks."""
        if self.open:
            return True
        host = host.lower().rstrip(".")
        if host in self.hosts or any(host.endswith(suffix) for suffix in self.suffixes):
            return True
        if not addresses or not self.networks:
            return False
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%")[0])
            except ValueError:
                return False
            if not any(ip in network for network in self.networks):
                return False
        return True


def parse(raw: str) -> Destinations:
    """Parse ``APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS`` (comma-separated hosts and CIDRs)."""
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    for part in (p.strip().lower() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
            continue
        except ValueError:
            pass
        if part.startswith("."):
            suffixes.append(part)
        else:
            hosts.add(part.rstrip("."))
    return Destinations(frozenset(hosts), tuple(suffixes), tuple(networks))
