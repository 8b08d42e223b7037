"""The request path's one Redis call, without redis-py's client machinery.

A page view of a consented visitor makes exactly one call: EVALSHA of the exchange script. Through
redis-py that call costs about 0.1 ms of CPU in a tight loop and 0.3 ms inside a page view
(connection pool, command packing, response callbacks); the same call written to a socket and
parsed by hiredis (the C parser redis-py itself uses) costs about 0.03 ms. See docs/benchmarks.md.

The connection is one socket per thread (and per process: a forked child opens its own), opened
on first use with the configured timeouts. Any error closes it, so a half-read reply can never be
taken for the next one; the caller turns the error into "store unavailable" and serves default
content. TLS (``rediss://``) is not handled here: the backend then keeps using redis-py.
"""

import socket
import threading
from os import getpid

import hiredis
from redis.connection import parse_url


class FastPathError(Exception):
    """The call failed (connection, timeout or an error reply other than NOSCRIPT)."""


class NoScript(Exception):
    """The server does not know the script (it was restarted or flushed): load it, retry."""


def supported(url: str) -> bool:
    return not url.startswith("rediss://")


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class ScriptCaller:
    """Calls one Lua script by its SHA1 over a per-thread socket."""

    def __init__(self, url: str, sha: str, *, socket_timeout: float, connect_timeout: float):
        params = parse_url(url)
        self._address = params.get("path") or (
            params.get("host", "localhost"),
            params.get("port", 6379),
        )
        self._setup = []
        if params.get("password"):
            auth = [b"AUTH", str(params["password"]).encode()]
            if params.get("username"):
                auth.insert(1, str(params["username"]).encode())
            self._setup.append(auth)
        if params.get("db"):
            self._setup.append([b"SELECT", str(params["db"]).encode()])
        self._timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._head = b"$7\r\nEVALSHA\r\n" + _bulk(sha.encode())
        self._local = threading.local()

    # -- connection -------------------------------------------------------------------------
    def _open(self):
        local = self._local
        try:
            if isinstance(self._address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._connect_timeout)
                sock.connect(self._address)
            else:
                sock = socket.create_connection(self._address, timeout=self._connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._timeout)
        except OSError as exc:
            raise FastPathError(f"connect: {type(exc).__name__}") from exc
        local.sock, local.reader, local.pid = sock, hiredis.Reader(encoding="utf-8"), getpid()
        for command in self._setup:
            reply = self._roundtrip(self._pack(command))
            if isinstance(reply, hiredis.ReplyError):
                self.close()
                raise FastPathError(f"connection setup refused: {str(reply).split(' ', 1)[0]}")
        return sock

    def close(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

    @staticmethod
    def _pack(parts: list[bytes]) -> bytes:
        return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)

    def _roundtrip(self, payload: bytes):
        local = self._local
        sock, reader = local.sock, local.reader
        try:
            sock.sendall(payload)
            reply = reader.gets()
            while reply is False:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("connection closed by the server")
                reader.feed(chunk)
                reply = reader.gets()
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise FastPathError(type(exc).__name__) from exc
        return reply

    # -- the call ---------------------------------------------------------------------------
    def __call__(self, keys: list[str], args: list[bytes]):
        """EVALSHA with ``keys`` and already-encoded ``args``; the decoded reply."""
        local = self._local
        reused = getattr(local, "sock", None) is not None and local.pid == getpid()
        if not reused:
            self._open()
        parts = [str(len(keys)).encode(), *(k.encode() for k in keys), *args]
        payload = b"*%d\r\n" % (len(parts) + 2) + self._head + b"".join(_bulk(p) for p in parts)
        try:
            reply = self._roundtrip(payload)
        except FastPathError as exc:
            # A connection the server dropped while idle (restart, client timeout) fails on
            # first use: reconnect once. Not after a timeout, which would double the wait.
            # (A repeated event is harmless: events are deduplicated by id.)
            if not reused or not isinstance(exc.__cause__, ConnectionError):
                raise
            self._open()
            reply = self._roundtrip(payload)
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if message.startswith("NOSCRIPT"):
                raise NoScript(message)
            raise FastPathError(message.split(" ", 1)[0])  # the error's code, no data
        return reply
