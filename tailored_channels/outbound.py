"""Every HTTP request the channels app makes (webhooks, Mailchimp's client, a site's own backends
that want the same protection) goes through :func:`request`:

- the host is resolved once, and every address it resolves to must be public, or inside
  ``CHANNELS_ALLOWED_PRIVATE_NETWORKS`` (:mod:`tailored_channels.addresses`); otherwise
  :class:`Refused`, and the destination is disabled with the reason;
- the connection is made to the address that was checked (a DNS answer that changes between the
  check and the connection cannot move it), with the URL's host in the ``Host`` header and, for
  https, as the TLS server name, the certificate verified against it;
- plain http only to an address inside the allowed networks (a receiver on the site's own
  network); anything on the internet is https;
- redirects are never followed (a 3xx is a failed attempt, like any other non-2xx);
- the response body is read up to :data:`MAX_RESPONSE_BYTES`, and the whole exchange (connect,
  send, headers, body) has a deadline of twice ``CHANNELS_TIMEOUT``: a receiver answering slowly,
  byte by byte, or without end, cannot hold a worker;
- ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` are ignored: a proxy would resolve and connect
  on its own, beyond these checks.

Connections are kept alive per checked address, host name and port, in the worker process.
"""

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from . import addresses
from .conf import get_setting

MAX_RESPONSE_BYTES = 1024 * 1024
_IDLE_PER_KEY = 4


class OutboundError(Exception):
    """A request that did not get an answer."""


class Refused(OutboundError):
    """The URL may not be requested: its address is private, loopback, link-local, multicast,
    reserved or unspecified (and not in ``CHANNELS_ALLOWED_PRIVATE_NETWORKS``), or it is plain
    http to the internet, or not a http(s) URL at all. ``reason`` says which, for the admin."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Failed(OutboundError):
    """No answer: the name did not resolve, the connection failed, TLS failed, or the deadline
    passed before the status line. A failed attempt, retried."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as in the URL (lower-cased): the Host header, the TLS server name
    port: int
    address: addresses.IPAddress  # checked: the one connected to
    path: str

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


@dataclass(slots=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    cut: str = ""  # why the body is incomplete: "" (whole), or a sentence

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace") + (f" [{self.cut}]" if self.cut else "")

    def summary(self, chars: int) -> str:
        """At most ``chars`` characters of the answer for a log, saying so if it was cut."""
        note = f" [{self.cut}]" if self.cut else ""
        text = self.body[:chars].decode("utf-8", "replace")
        return text[: max(0, chars - len(note))] + note if note else text[:chars]


def allowed_networks() -> tuple[addresses.IPNetwork, ...]:
    try:
        return addresses.parse_networks(get_setting("CHANNELS_ALLOWED_PRIVATE_NETWORKS"))
    except (TypeError, ValueError):
        return ()  # misconfigured (tailored_channels.E003): allow nothing private


def resolve(host: str, port: int) -> list[addresses.IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Failed(f"{host} does not resolve ({exc})") from exc
    found: list[addresses.IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = addresses.ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise Failed(f"{host} does not resolve")
    return found


def check(url: str) -> Target:
    """Resolve and check ``url``; the :class:`Target` to connect to, or :class:`Refused` (or
    :class:`Failed` when the name does not resolve now)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"Not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("Only http and https URLs can be sent to.")
    host = parts.hostname
    if not host:
        raise Refused("The URL has no host.")
    if not host.isascii():  # an internationalised name: its ASCII form, for DNS, Host and TLS
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise Refused(f"Not a valid host name: {exc}") from exc
    port = port or (443 if scheme == "https" else 80)
    networks = allowed_networks()
    found = resolve(host, port)
    for address in found:
        reason = addresses.refusal(address, networks)
        if reason:
            named = "" if host == str(address) else f"{host} resolves to "
            raise Refused(
                f"{named}{reason}; add its network to CHANNELS_ALLOWED_PRIVATE_NETWORKS if it "
                "is a receiver of your own."
            )
    if scheme == "http" and not all(addresses.allowed(a, networks) for a in found):
        raise Refused(
            "Plain http is only for addresses in CHANNELS_ALLOWED_PRIVATE_NETWORKS; "
            "use an https URL."
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port, found[0], path)


def problem(url: str) -> str | None:
    """Why ``url`` cannot be a destination, for a form (``None``: fine, or a name that does not
    resolve now: the worker checks again at every attempt)."""
    try:
        check(url)
    except Refused as exc:
        return exc.reason
    except Failed:
        return None
    return None


@cache
def _tls_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


class _HTTPConnection(http.client.HTTPConnection):
    pass


class _HTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the URL's host as server name and for verification."""

    def __init__(self, address: str, port: int, server_hostname: str, timeout: float):
        super().__init__(address, port, timeout=timeout, context=_tls_context())
        self.server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_hostname)


_idle: dict[tuple, list[http.client.HTTPConnection]] = {}
_idle_lock = threading.Lock()


def _key(target: Target) -> tuple:
    return (target.scheme, str(target.address), target.port, target.host)


def _take(target: Target) -> http.client.HTTPConnection | None:
    with _idle_lock:
        pool = _idle.get(_key(target)) or []
        while pool:
            conn = pool.pop()
            sock = conn.sock
            # A kept-alive connection the receiver closed (or wrote to unasked) is readable.
            if sock is not None and not select.select([sock], [], [], 0)[0]:
                return conn
            conn.close()
    return None


def _give_back(target: Target, conn: http.client.HTTPConnection) -> None:
    with _idle_lock:
        pool = _idle.setdefault(_key(target), [])
        if len(pool) < _IDLE_PER_KEY:
            pool.append(conn)
            return
    conn.close()


def _new(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _HTTPSConnection(str(target.address), target.port, target.host, timeout)
    return _HTTPConnection(str(target.address), target.port, timeout=timeout)


def _abort(conn: http.client.HTTPConnection, fired: threading.Event) -> None:
    fired.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Response:
    """Send one request to ``url`` under the rules of this module; the answer whatever its
    status (never a redirect followed). Raises :class:`Refused` (do not retry: the destination
    needs fixing) or :class:`Failed` (no answer: retry)."""
    timeout = float(get_setting("CHANNELS_TIMEOUT") if timeout is None else timeout)
    deadline = time.monotonic() + 2 * timeout
    target = check(url)
    sent_headers = {**(headers or {}), "Host": target.host_header}
    conn = _take(target)
    for reused in (conn is not None, False):
        if conn is None:
            conn = _new(target, timeout)
        try:
            return _exchange(conn, target, method, body, sent_headers, timeout, deadline)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            conn.close()
            conn = None
            if not reused or time.monotonic() >= deadline:
                raise Failed(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            late = " (deadline)" if time.monotonic() >= deadline else ""
            raise Failed(f"{type(exc).__name__}{late}: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _exchange(conn, target, method, body, headers, timeout, deadline) -> Response:
    # The watchdog cuts the connection at the deadline whatever it is waiting for (a status
    # line or headers sent a byte at a time beat any per-read timeout).
    fired = threading.Event()
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, (conn, fired))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, target.path, body=body, headers=headers)
        answer = conn.getresponse()
        if fired.is_set():  # the headers were cut short: http.client takes that for their end
            raise TimeoutError("no complete answer before the deadline")
        chunks: list[bytes] = []
        size = 0
        cut = ""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cut = "answer cut at the deadline"
                    break
                if conn.sock is not None:
                    conn.sock.settimeout(min(timeout, remaining))
                chunk = answer.read1(64 * 1024)
                if not chunk:
                    if answer.length:  # the connection ended before the announced length
                        cut = "answer cut: the receiver stopped sending"
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    cut = f"answer cut at {MAX_RESPONSE_BYTES} bytes"
                    break
        except (OSError, http.client.HTTPException):
            cut = "answer cut: the receiver stopped sending"
        if fired.is_set() and not cut:  # an answer read until the connection closed
            cut = "answer cut at the deadline"
        if not cut and answer.length == 0 and not answer.isclosed():
            answer.close()  # read whole (or no body at all): the connection can be kept
    finally:
        watchdog.cancel()
    if cut and time.monotonic() >= deadline:
        cut = f"answer cut at the deadline ({2 * timeout:g} s)"
    data = b"".join(chunks)[:MAX_RESPONSE_BYTES]
    if cut or answer.will_close or not answer.isclosed() or conn.sock is None:
        conn.close()
    else:
        conn.sock.settimeout(timeout)
        _give_back(target, conn)
    return Response(answer.status, answer.headers, data, cut)
