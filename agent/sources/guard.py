"""The address guard: the built-in fetcher connects only to public addresses, unless the user said so.

Any page, search result or planner-chosen URL can point the fetcher at the machine's own services,
the cloud metadata address or the private network (server-side request forgery). So the fetcher's
connections go through :class:`GuardedBackend`, an httpcore network backend: for every new connection,
on the first request and on every redirect alike, it resolves the host itself, refuses when any
resolved address is not public (see :func:`classify`), and then connects to an address it checked.
The check and the connection use the same answer, so a name that resolves to a public address when
checked and a private one when connected (DNS rebinding) has nothing to slip through; nothing is sent
to a refused address, so no body of a refused hop is ever read.

Hosts the user named themselves are trusted: their connections are made the same way, unchecked, so
research on an intranet wiki works and redirects that stay on such a host are followed. Trust is by
host, not address, and a redirect to another host is judged by that host alone.

Only the built-in fetcher is guarded: a Firecrawl backend fetches on Firecrawl's side, which does its
own checks (a self-hosted Firecrawl reaches whatever *its* network reaches).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any, Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host, port)``: the addresses to try for ``host``, in order.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOW_HINT = "pass --allow-private-hosts to allow"

# Not in ipaddress's is_private: shared address space (RFC 6598) is how carrier NAT, Tailscale and some
# clouds number internal hosts, and Alibaba Cloud's metadata service lives in it (100.100.100.200).
_CARRIER_NAT = ipaddress.ip_network("100.64.0.0/10")
# Named apart so that a refusal says "private network" only for these and "not publicly routable" for
# the documentation, benchmarking and protocol ranges that is_private also covers.
_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
# NAT64's well-known prefix (RFC 6052) carries an IPv4 address in its last 32 bits, which a NAT64
# gateway connects to on our behalf.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when connecting to it reaches that one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(address: str | IPAddress) -> str | None:
    """Why ``address`` is not public (``"loopback"``, ``"link-local"``, ...), or None if it is.

    IPv4-mapped, 6to4 and NAT64 IPv6 addresses are judged by the IPv4 address they carry: the check
    must not depend on which notation a DNS answer or a URL used. Anything ``ipaddress`` does not
    call global is refused, whatever its name.
    """
    ip = address if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return classify(embedded)
        # Zone ids ("%eth0") do not change what an address is; ipaddress compares them, so drop them.
        ip = ipaddress.IPv6Address(int(ip))
    if ip in _METADATA:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:  # is_global is True for much of 224.0.0.0/4
        return "multicast"
    if ip.version == 4 and ip in _CARRIER_NAT:
        return "carrier-grade NAT"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # deprecated, but routed internally
        return "site-local"
    if any(ip in net for net in _PRIVATE_NETS if net.version == ip.version):
        return "private network"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "not publicly routable"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_key(value: str) -> str:
    """A host as trust compares it: lowercase, IDNA-encoded, no port, brackets or trailing dot.

    ``value`` may be a host, ``host:port`` or a URL. It is normalised the way httpx names the host it
    connects to, so that a trusted ``Bücher.de`` matches the ``xn--bcher-kva.de`` httpcore asks for.
    """
    text = value.strip()
    if _is_ip(text):  # a bare IPv6 address is not something httpx.URL can take after "http://"
        return text.lower()
    try:
        raw = httpx.URL(text if "://" in text else f"http://{text}").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        raw = text
    return raw.lower().rstrip(".")


async def resolve(host: str, port: int) -> list[str]:
    """The system's addresses for ``host``, in its order, without repeats; an IP address is itself.

    The fetcher looks this up when it connects, so tests may replace it (``guard.resolve = stub``).
    Names like ``2130706433`` or ``127.1`` are resolved, not parsed, so they are judged by the address
    the system would connect to.
    """
    if _is_ip(host):
        return [host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Refused(Exception):
    """A connection the guard would not make: ``host`` resolved to ``address``, which is ``kind``.

    Not an ``OSError`` nor an httpcore error, so it travels through httpcore and httpx untouched and
    the fetcher words it with what only it knows: which URL was asked for.
    """

    def __init__(self, host: str, address: str, kind: str) -> None:
        super().__init__(f"{host} resolves to {address}, a private address ({kind})")
        self.host = host
        self.address = address
        self.kind = kind

    def reason(self, *, redirected: bool) -> str:
        """One line saying why, e.g. "redirected to 127.0.0.2, a private address (loopback); pass ..."."""
        what = f"a private address ({self.kind}); {ALLOW_HINT}"
        literal = _is_ip(self.host)
        if redirected:
            via = "" if literal else f", which resolves to {self.address}"
            return f"redirected to {self.host}{via}, {what}"
        return f"{self.host} is {what}" if literal else f"{self.host} resolves to {self.address}, {what}"


class AddressGuard:
    """Which hosts are trusted, and the checked addresses to connect to for any other."""

    def __init__(self, trusted_hosts: Iterable[str] = (), *, resolve: Resolver | None = None) -> None:
        self.trusted = frozenset(host_key(h) for h in trusted_hosts if h and h.strip())
        self._resolve = resolve

    def trusts(self, host_or_url: str) -> bool:
        return host_key(host_or_url) in self.trusted

    async def addresses(self, host: str, port: int) -> list[str]:
        """Where to connect for ``host``: every address, checked unless the host is trusted.

        A host with any non-public address is refused outright rather than narrowed to its public
        ones: a name answering with both is not one to trust, and the refusal says which address.
        """
        # The module attribute is read at call time, so a stub put there reaches fetchers made earlier.
        found = list(await (self._resolve or resolve)(host, port))
        if not found:
            raise OSError(f"{host} resolves to no address")
        if not self.trusts(host):
            for address in found:
                kind = classify(address)
                if kind is not None:
                    raise Refused(host_key(host), address, kind)
        return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses its :class:`AddressGuard` gave."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend) -> None:
        self.guard = guard
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.guard.addresses(host, port), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:g}s") from exc
        except OSError as exc:
            # As httpcore's own backends do, so the fetcher's DNS-failure message is the same either way.
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                # TLS is started later on this stream with the URL's host name, so SNI and certificate
                # checks are for the host, not the address.
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc  # try the host's next address, as a system resolver's caller would
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the guarded fetcher does not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(guard: AddressGuard, *, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connections made through a :class:`GuardedBackend`.

    httpx has no public way to give its transport an httpcore network backend, so this sets the pool's
    one after construction, and fails loudly if a new httpx or httpcore moved it: better no fetcher
    than one that silently lost its guard. A transport given to a client also turns off proxies from
    the environment, which is what the guard needs: through a proxy it could not see where a request
    goes.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not isinstance(inner, httpcore.AsyncNetworkBackend):
        raise RuntimeError(f"the address guard cannot reach the connection pool of httpx {httpx.__version__} "
                           f"with httpcore {httpcore.__version__}; it needs updating for them")
    pool._network_backend = GuardedBackend(guard, inner)
    return transport
