"""Where the service may call out: webhooks, callbacks, resume URLs and notifications.

One policy, ``APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS``, checked twice:

- when a URL is stored (``check_url``): a literal address or a local name the policy
  refuses is a 422 naming the field; other names wait for DNS;
- when a call is made (``GuardedBackend``): the host is resolved once (``APPROVALS_DNS_OVERRIDES``
  first, then the system resolver), every address is checked, and the connection goes to
  exactly a checked address, so a name cannot resolve to one address for the check and
  another for the connection (DNS rebinding). TLS still verifies the certificate for the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from approvals.core.errors import invalid

SETTING = "APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS"
PUBLIC = "public"  # the entry that stands for every globally routable address
EVERYTHING = "*"  # the entry that allows every destination (the old default)
BODY_LIMIT = 64 * 1024  # bytes of a receiver's answer that are read; the rest is dropped

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
SHARED = ipaddress.ip_network("100.64.0.0/10")
PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback", "metadata.google.internal"})
LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa")
NUMERIC = re.compile(r"[0-9][0-9a-fx.]*")  # 2130706433, 0x7f.1, 127.1: IPv4 to inet_aton


class Refused(PermissionError):
    """A destination the policy refuses; retrying cannot help, so it is never retried."""


def normal(host: str) -> str:
    """A host as compared: lower case, no brackets, zone id or trailing dot."""
    return host.strip().strip("[]").split("%")[0].lower().rstrip(".")


def literal(host: str) -> Address | None:
    """The address a host names literally (``127.0.0.1``, ``::1``, ``2130706433``), if any."""
    host = normal(host)
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    if NUMERIC.fullmatch(host):
        with contextlib.suppress(OSError):
            return ipaddress.IPv4Address(socket.inet_aton(host))
    return None


def local_name(host: str) -> bool:
    """``localhost`` and the like: names that only mean something inside this network."""
    host = normal(host)
    return (
        host in LOCAL_NAMES
        or host.endswith(LOCAL_SUFFIXES)
        or "." not in host  # single labels: `metadata`, `intranet` (search domains)
    )


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def kind(ip: Address) -> str | None:
    """What makes an address not public (``"a loopback address"``…); None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            return kind(inner)
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in SHARED:
        return "a shared (carrier-grade NAT) address"
    if any(ip in network for network in PRIVATE):
        return "a private address"
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    if not ip.is_global or ip.is_reserved or site_local:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class Policy:
    """Where calls may go: every public address (``public``, the default), plus listed hosts,
    ``.domains`` and networks. A configured list without ``public`` allows only what it lists.
    """

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    public: bool = True
    everything: bool = False

    def listed(self, ip: Address) -> bool:
        """Whether a listed network holds the address (or the IPv4 address it carries)."""
        inner = _embedded(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        return any(ip in net or (inner is not None and inner in net) for net in self.networks)

    def refusal(self, host: str, addresses: Sequence[str] | None = None) -> str | None:
        """Why a call to ``host`` is refused, or None when it is allowed.

        ``addresses`` are what the host resolved to; None when it has not been resolved
        (at creation), so a name that is not local passes until it is sent.
        """
        if self.everything:
            return None
        name = normal(host)
        if name in self.hosts or any(
            name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes
        ):
            return None
        ip = literal(name)
        if ip is not None:
            candidates: Sequence[Address | str] = [ip]
        elif local_name(name):
            return self._refused(f"{name or '(no host)'} is a local name", name)
        elif addresses is None:
            if self.public or self.networks:
                return None  # decided after DNS resolution, when it is sent
            return self._refused(f"{name} is not listed", name)
        elif not addresses:
            return f"refused: {name} resolves to no address"
        else:
            candidates = addresses
        for candidate in candidates:
            address = literal(candidate) if isinstance(candidate, str) else candidate
            if address is None:
                return f"refused: {name} resolves to {candidate!r}, not an address"
            if self.listed(address):
                continue
            what = kind(address)
            if what is None and self.public:
                continue
            if ip is None:
                subject = f"{name} resolves to {address},"
            else:
                subject = f"{name} is" if name == str(address) else f"{name} ({address}) is"
            if what is None:
                return self._refused(f"{subject} a public address that is not listed", address)
            return self._refused(f"{subject} {what}", address)
        return None

    def _refused(self, what: str, entry: object) -> str:
        """The refusal and how to allow it (keeping `public`, or the list would replace it)."""
        how = f"allow it by adding {entry} to {SETTING}"
        if self.public and not self.networks and not self.hosts and not self.suffixes:
            how += f" (for example {SETTING}={PUBLIC},{entry})"
        elif not self.public:
            how += f" (or `{PUBLIC}` for every public address)" if "public address" in what else ""
        return f"refused: {what}; {how}"


@functools.lru_cache(maxsize=16)
def parse(raw: str) -> Policy:
    """Parse ``APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS``: hosts, ``.domains``, CIDRs,
    ``public`` and ``*``, comma-separated. Empty means ``public``."""
    parts = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if not parts:
        return Policy()
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    for part in parts:
        if part in (PUBLIC, EVERYTHING):
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if part.startswith("."):
            suffixes.append(part.rstrip("."))
        else:
            hosts.add(normal(part))
    return Policy(
        frozenset(hosts),
        tuple(suffixes),
        tuple(networks),
        public=PUBLIC in parts,
        everything=EVERYTHING in parts,
    )


HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def unsendable(value: str) -> str | None:
    """Why the sender cannot send to ``value`` (None when it can): the one URL rule, checked
    when a URL is stored and again before each call, with the sender's own parser (httpx)
    and the parser the destination check reads (``urlsplit``)."""
    if not value.isprintable() or any(c.isspace() for c in value):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        port = parts.port
        url = httpx.URL(value)
    except (ValueError, httpx.InvalidURL) as exc:
        return f"is not a URL the service can call ({str(exc)[:200]})"
    if parts.scheme not in ("http", "https") or url.scheme not in ("http", "https"):
        return "must be an absolute http:// or https:// URL"
    host = url.host
    if not host or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    if port == 0 or (url.port is not None and not 0 < url.port < 65536):
        return "has a port outside 1-65535"
    if literal(host) is None:
        raw = url.raw_host.decode("ascii", "replace").rstrip(".")
        if len(raw) > 253 or not all(HOST_LABEL.fullmatch(label) for label in raw.split(".")):
            return f"has a host name that cannot be resolved: {host[:100]!r}"
    return None


def check_url(value: str, field: str, policy: Policy) -> str:
    """The URL when the policy may allow it (names wait for DNS); otherwise a 422 on ``field``."""
    reason = policy.refusal(urlsplit(value).hostname or "")
    if reason is not None:
        raise invalid(field, reason)
    return value


def parse_overrides(raw: str) -> dict[str, tuple[str, ...]]:
    """Parse ``APPROVALS_DNS_OVERRIDES`` (``name=address,…``; a name may repeat)."""
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, address = part.partition("=")
        if not sep or not normal(name):
            raise ValueError(f"{part!r} is not name=address")
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError as exc:
            raise ValueError(f"{address.strip()!r} in {part!r} is not an IP address") from exc
        out.setdefault(normal(name), []).append(str(ip))
    return {name: tuple(addresses) for name, addresses in out.items()}


class Resolver:
    """Names to addresses: the overrides first (like curl --resolve), then the system."""

    def __init__(self, overrides: dict[str, tuple[str, ...]] | None = None) -> None:
        self.overrides = overrides or {}

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of the host, in the resolver's order; OSError when there is none."""
        name = normal(host)
        ip = literal(name)
        if ip is not None:
            return [str(ip)]
        if name in self.overrides:
            return list(self.overrides[name])
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{name} resolves to no address")
        return addresses


@dataclass(frozen=True)
class Guard:
    """The policy with the resolver it checks after."""

    policy: Policy
    resolver: Resolver

    async def addresses(self, host: str, port: int) -> list[str]:
        """Resolve once and check every address; Refused, or OSError when it does not resolve."""
        addresses = await self.resolver.resolve(host, port)
        reason = self.policy.refusal(host, addresses)
        if reason is not None:
            raise Refused(reason)
        return addresses

    async def check_url(self, url: str) -> None:
        """Refused when the URL's host resolves anywhere the policy refuses (for senders
        that connect by themselves: the Slack and SMTP clients)."""
        parts = urlsplit(url)
        await self.addresses(parts.hostname or "", parts.port or 443)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(self, guard: Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.guard.addresses(host, port)
        except Refused:
            raise
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("refused: outbound calls go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def client(guard: Guard, timeout: float) -> httpx.AsyncClient:
    """An HTTP client that connects only where the guard allows: no redirects followed,
    no proxies from the environment (a proxy would resolve and connect unchecked)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx 0.28 takes no network backend: give its connection pool one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(guard),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )


async def read_bounded(response: httpx.Response, limit: int = BODY_LIMIT) -> bytes:
    """At most ``limit`` bytes of a streamed answer (raw, so a compressed body cannot grow)."""
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
