"""Outbound HTTP to URLs that users give the server (webhook targets): only to the outside, within one deadline.

1. The host is resolved once. Every address it resolves to must be public: loopback, private, link-local,
   multicast, reserved, unspecified, shared (CGNAT, 100.64.0.0/10) and the IPv4 forms hidden in IPv6
   (IPv4-mapped, NAT64) are refused unless an allowed network (`WEBHOOK_ALLOWED_NETWORKS`) covers them. Cloud
   metadata endpoints are refused even then. Decimal, octal and hexadecimal IPv4 spellings
   (`http://2130706433/`) are resolved like any name, so they are judged by the address they stand for.
2. The connection goes to an address that was checked, never to a second lookup of the name (a DNS answer
   that changes between the check and the connection, "DNS rebinding", cannot redirect it). The name is
   kept for the Host header, TLS SNI and certificate verification.
3. One deadline covers the whole exchange: name lookup, connect, TLS handshake, sending, and reading the
   status line and headers. Each socket operation gets only what is left of it, so a receiver that dribbles
   a byte at a time cannot hold a worker longer. The response body is not read.
4. Redirects are not followed: a 3xx is an answer like any other.

Why not a library: requests-hardened and advocate filter addresses, but neither takes networks to allow nor
bounds a whole exchange (urllib3's `total` timeout is still a per-read timeout after connecting).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata and host agent endpoints of cloud providers: credentials live behind them, so they are
# refused even inside an allowed network.
METADATA_NETWORKS = [
    ipaddress.ip_network(network)
    for network in (
        "169.254.169.254/32",  # AWS, GCP, Azure, DigitalOcean, OpenStack, Oracle
        "169.254.170.2/32",  # AWS ECS task credentials
        "169.254.170.23/32",  # AWS EKS pod identity
        "fd00:ec2::254/128",  # AWS over IPv6
        "fd00:ec2::23/128",  # AWS EKS pod identity over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud Classic
        "168.63.129.16/32",  # Azure host agent (WireServer): a public address
    )
]
# Special-purpose blocks that Python 3.11's `is_global` still counts as global.
_NOT_PUBLIC = [ipaddress.ip_network(network) for network in ("192.0.0.0/24", "fec0::/10")]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
# Each status's standard reason, kept instead of the receiver's own words (which could carry anything).
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


class Refused(Exception):
    """The server may not call this URL: a permanent refusal, not a failure worth retrying."""


class DeadlineExceeded(TimeoutError):
    pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no answer within {self.seconds:g} s")
        return left


def _stands_for(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 one only spells differently: IPv4-mapped (::ffff:a.b.c.d) or NAT64
    (64:ff9b::a.b.c.d, which a NAT64 gateway turns into a.b.c.d)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: Address) -> str | None:
    """What makes an address not public, or None for a public one."""
    if address in _SHARED:
        return "shared (CGNAT)"
    for name in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private", "site_local"):
        if getattr(address, f"is_{name}", False):
            return name.replace("_", "-")
    if not address.is_global or any(address in network for network in _NOT_PUBLIC):
        return "special-purpose"
    return None


def address_refusal(address: Address) -> str | None:
    """Why the server may not connect to `address` ("a loopback address; ..."), or None when it may."""
    stands_for = _stands_for(address)
    # 6to4 (2002:aabb:ccdd::) carries an IPv4 address too: both must be public.
    carried = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    candidates = [candidate for candidate in (address, stands_for, carried) if candidate is not None]
    if any(candidate in network for candidate in candidates for network in METADATA_NETWORKS):
        return "a cloud metadata address, never called"
    if any(candidate in network for candidate in candidates for network in settings.WEBHOOK_ALLOWED_NETWORKS):
        return None
    if stands_for is not None:
        kind = _kind(stands_for)
    else:
        kind = _kind(address) or (_kind(carried) if carried is not None else None)
    if kind is None:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} address; only public addresses and WEBHOOK_ALLOWED_NETWORKS are called"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # what goes on the request line: path and query


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("only http and https URLs can be called")
    if parts.username is not None or parts.password is not None:
        # Targets are shown to every viewer of the delivery history; the body is signed instead.
        raise Refused("put no credentials in the URL (webhooks are signed with the subscription's secret)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise Refused("the URL names no host")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, path=path)


def _getaddrinfo(host: str, port: int, deadline: Deadline) -> list[tuple]:
    """getaddrinfo has no timeout of its own: it runs in a thread the deadline stops waiting for."""
    outcome: list = []
    finished = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)
        finally:
            finished.set()

    threading.Thread(target=lookup, name="egress-resolve", daemon=True).start()
    if not finished.wait(deadline.remaining()):
        raise DeadlineExceeded(f"resolving {host} took more than {deadline.seconds:g} s")
    if isinstance(outcome[0], UnicodeError):
        raise Refused(f"{host!r} is not a valid host name")
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return outcome[0]


def resolve(target: Target, deadline: Deadline) -> list[tuple[int, tuple]]:
    """(family, socket address) of every address of the target's host, in the resolver's order."""
    seen: dict[tuple[int, tuple], None] = {}
    for family, _, _, _, sockaddr in _getaddrinfo(target.host, target.port, deadline):
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault((family, sockaddr[:2]), None)
    if not seen:
        raise socket.gaierror(socket.EAI_NONAME, f"{target.host} has no IPv4 or IPv6 address")
    return list(seen)


def allowed_addresses(target: Target, deadline: Deadline) -> list[tuple[int, tuple]]:
    """The target's addresses, all checked; one refused address refuses the host (a name that mixes an internal
    address among public ones is not called at all)."""
    addresses = resolve(target, deadline)
    for _, sockaddr in addresses:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        reason = address_refusal(address)
        if reason:
            if _literal(target.host) == address:
                raise Refused(f"{target.host} is {reason}")
            raise Refused(f"{target.host} resolves to {address}, {reason}")
    return addresses


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, *, timeout: float) -> None:
    """Raise Refused when `url` may not be called. A name that does not resolve (now) passes: every delivery
    checks again, so this only tells a user early about an address that is refused."""
    target = parse_target(url)
    try:
        allowed_addresses(target, Deadline(timeout))
    except (OSError, DeadlineExceeded):
        return


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The system's trust store with hostname checks (SSL_CERT_FILE and SSL_CERT_DIR are honoured)."""
    return ssl.create_default_context()


class _DeadlineSocket:
    """A connected socket whose every send and receive may take only what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data) -> None:
        view = memoryview(data)
        while view:
            self._sock.settimeout(self._deadline.remaining())
            view = view[self._sock.send(view) :]

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        return io.BufferedReader(_SocketReader(self))

    def close(self) -> None:
        self._sock.close()


class _SocketReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)


def _open_socket(addresses: list[tuple[int, tuple]], deadline: Deadline) -> socket.socket:
    """Connect to the first of the checked addresses that answers."""
    last_error: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(sockaddr)
            # The TLS handshake, if any, runs on this timeout: give it only what is left.
            sock.settimeout(deadline.remaining())
            return sock
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last_error = exc
    assert last_error is not None
    raise last_error


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to addresses resolved and checked beforehand instead of looking the host up again; the host
    name still makes the Host header (and, for HTTPS, the SNI and the name the certificate must carry)."""

    def __init__(self, host: str, port: int, *, addresses: list, deadline: Deadline, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self._addresses = addresses
        self._deadline = deadline
        self._create_connection = lambda *args, **kwargs: _open_socket(self._addresses, self._deadline)

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)


class _PinnedHTTPSConnection(_PinnedConnection, http.client.HTTPSConnection):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "")


def post(url: str, body: bytes, *, headers: dict[str, str], timeout: float, guarded: bool = True) -> Answer:
    """POST `body` to `url` and return the answer's status, all within `timeout` seconds.

    Raises Refused (the URL or its addresses are not allowed; only when `guarded`), TimeoutError (the deadline
    passed), OSError (name lookup, connection or TLS failed) or http.client.HTTPException (not an HTTP answer).
    `guarded=False` is for URLs only the server's own configuration sets (SMS and push gateways), which may
    well be internal: they keep the deadline and the rest, not the address rules."""
    deadline = Deadline(timeout)
    target = parse_target(url)
    addresses = allowed_addresses(target, deadline) if guarded else resolve(target, deadline)
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target.host, target.port, addresses=addresses, deadline=deadline, context=tls_context()
        )
    else:
        connection = _PinnedConnection(target.host, target.port, addresses=addresses, deadline=deadline)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(status=response.status, retry_after=response.getheader("Retry-After"))
    finally:
        connection.close()
