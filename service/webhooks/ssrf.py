"""Keep callbacks away from internal addresses (SSRF): check the URL at submit, and again at every delivery.

At delivery the host is resolved, every address is checked, and the connection goes to a checked address
(`PinnedTransport`), so a DNS answer that changes between the check and the connect (rebinding) cannot
redirect a webhook to loopback, the private network or a cloud metadata service. Hosts listed in
CALLBACK_ALLOWED_HOSTS skip the address check (the monolith usually lives on a private address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_CALLBACK_URL_LENGTH = 2048
# Tried in turn when a connection is refused; more would only slow a dead receiver's attempt down.
MAX_ADDRESSES_TRIED = 4
ALLOWED_SCHEMES = ("http", "https")
# Cloud metadata services (AWS IPv4/IPv6 and ECS, GCP/Azure/DigitalOcean, Oracle, Alibaba). Most are
# link-local or private already; the list keeps them refused whatever the address flags say.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "192.0.0.192",
        "100.100.100.200",
    )
)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class CallbackRefused(Exception):
    """The callback URL may not be used; the message says why (it is shown to the API caller)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address can carry to the IPv4 network (mapped, 6to4, Teredo, NAT64)."""
    embedded = [address.ipv4_mapped, address.sixtofour]
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in NAT64_PREFIX:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in embedded if ipv4 is not None]


def _own_refusal(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def address_refusal(address: IPAddress) -> str | None:
    """Why a callback may not connect to `address`, or None when it is a public unicast address."""
    reason = _own_refusal(address)
    if reason is None and isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            inner = _own_refusal(embedded)
            if inner is not None:
                return f"{inner} ({embedded}) inside an IPv6 address"
    return reason


def normalise_host(host: str) -> str:
    """Compare hosts the way DNS does: case-insensitive, without a trailing dot or IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_callback_url(url: str) -> httpx.URL:
    """The URL's own checks: http(s), a host, no user:password, not absurdly long."""
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        raise CallbackRefused(f"callback_url is longer than {MAX_CALLBACK_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        raise CallbackRefused(f"callback_url is not a valid URL: {error}") from None
    if parsed.scheme not in ALLOWED_SCHEMES or not url.lower().startswith(ALLOWED_SCHEMES):
        raise CallbackRefused("callback_url must be an http:// or https:// URL")
    if not parsed.host:
        raise CallbackRefused("callback_url must name a host")
    if parsed.userinfo:
        raise CallbackRefused("callback_url must not contain a user name or password (user:password@host)")
    if parsed.port == 0:
        raise CallbackRefused("callback_url must not use port 0")
    return parsed


@dataclass(frozen=True)
class CallbackTarget:
    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]  # checked (or allowed by CALLBACK_ALLOWED_HOSTS): connect only to these


@dataclass
class CallbackGuard:
    """The allow-list and the resolver, shared by the API (at submit) and the webhook worker (at delivery).

    `resolver` is an attribute so tests can answer DNS themselves (and differently at delivery time)."""

    allowed_hosts: Iterable[str] = ()
    resolver: Resolver = field(default=system_resolver)

    def __post_init__(self) -> None:
        self._allowed = frozenset(normalise_host(host) for host in self.allowed_hosts if host.strip())

    def is_allowed_host(self, host: str) -> bool:
        return normalise_host(host) in self._allowed

    async def vet(self, url: str) -> CallbackTarget:
        """Resolve the host and check every address; CallbackRefused says why the URL may not be used."""
        parsed = parse_callback_url(url)
        host = normalise_host(parsed.raw_host.decode("ascii"))
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = _literal_address(host)
        if literal is not None:
            addresses: Sequence[str] = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as error:
                raise CallbackRefused(f"callback_url host {host!r} does not resolve: {error}") from None
            if not addresses:
                raise CallbackRefused(f"callback_url host {host!r} does not resolve to any address")
        if not self.is_allowed_host(host):
            for address in addresses:
                reason = address_refusal(ipaddress.ip_address(address))
                if reason is not None:
                    shown = host if literal is not None else f"{host} resolves to {address}, which"
                    raise CallbackRefused(
                        f"callback_url host {shown} is {reason}; callbacks may only target public addresses "
                        "unless the host is listed in CALLBACK_ALLOWED_HOSTS"
                    )
        return CallbackTarget(url=parsed, host=host, port=port, addresses=tuple(addresses))


class PinnedTransport(httpx.AsyncBaseTransport):
    """Vets each request's host at connection time and connects only to a vetted address.

    The URL handed to the connection pool names the vetted IP; the Host header (set when the request was
    built) and TLS (SNI and certificate check, through httpcore's `sni_hostname`) keep the real host name."""

    def __init__(self, guard: CallbackGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = await self._guard.vet(str(request.url))
        if target.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        last_error: httpx.ConnectError | None = None
        for address in target.addresses[:MAX_ADDRESSES_TRIED]:
            request.url = target.url.copy_with(host=address)
            try:
                return await self._inner.handle_async_request(request)
            except httpx.ConnectError as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def aclose(self) -> None:
        await self._inner.aclose()
