"""The request path's one Redis call (``RedisBackend._round_trip``: redis-py's own connection,
one per thread, the packed EVALSHA written and its reply read) against real servers: one send
per call, health checks, reconnecting after the server dropped an idle connection, reloading a
forgotten script, timing out instead of hanging (and not trying twice), a forked process and
each thread with its own connection, AUTH with an ACL user, and TLS."""

import gc
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import hiredis
import pytest
import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.connection import SSLConnection
from redis.retry import Retry

from segments.backends.base import BackendUnavailable
from segments.backends.redis import RedisBackend

pytestmark = pytest.mark.services
KEY = "ab12cd34" * 8


def _options(**overrides) -> dict:
    options = dict(settings.SEGMENTS_BACKEND["OPTIONS"])
    options["KEY_PREFIX"] += "-fastpath"
    return {**options, **overrides}


def _consenting(backend: RedisBackend) -> RedisBackend:
    backend.flush()
    backend.set_consent(KEY, {"tracking": time.time() + 3600}, "7", 3600)
    return backend


@pytest.fixture
def store():
    backend = _consenting(RedisBackend(_options()))
    yield backend
    backend.flush()


def _exchange(backend, **kwargs):
    return backend.exchange(KEY, purpose="tracking", notice_version="7", now=time.time(), **kwargs)


def _port(connection) -> int:
    return connection._sock.getsockname()[1]


def _server_entry(backend, port: int) -> dict | None:
    """The server's CLIENT LIST entry of the connection from this local port."""
    return next((c for c in backend.client.client_list() if c["addr"].endswith(f":{port}")), None)


def _record_sends(connection, monkeypatch) -> list[str]:
    """The command name of everything the connection sends from now on."""
    names = []
    real = connection.send_packed_command

    def recording(command, check_health=True):
        # Recorded once sent: a health check's PING goes (and is answered) inside the call.
        data = b"".join(command) if isinstance(command, list) else command
        real(command, check_health)
        names.append(data.split(b"\r\n")[2].decode().upper())

    monkeypatch.setattr(connection, "send_packed_command", recording)
    return names


def test_reads_memberships_and_appends_events_on_the_selected_database(store):
    pipe = store.client.pipeline()
    pipe.hset(store._m(KEY), mapping={"s:engaged": "inf", "s:gone": "1.0", "s:bad": "x"})
    pipe.execute()
    result = _exchange(store, events=[{"k": KEY, "d": '{"n":"page_view"}'}])
    assert result.consented is True
    # Only memberships current at the call's time come back (an unreadable end has ended).
    assert result.memberships == {"engaged": float("inf")}
    assert result.segments_at(time.time()) == frozenset({"engaged"})
    stream = store._stream(store.partition_for(KEY))
    assert [f["d"] for _, f in store.client.xrange(stream)] == ['{"n":"page_view"}']
    assert result.drain_needed is True


def test_not_consented_and_unknown_visitors(store):
    assert (
        store.exchange(KEY, purpose="ads", notice_version="7", now=time.time()).consented is False
    )
    assert (
        store.exchange(KEY, purpose="tracking", notice_version="8", now=time.time()).consented
        is False
    )
    assert (
        store.exchange(
            "ffff0000" * 8, purpose="tracking", notice_version="7", now=time.time()
        ).consented
        is None
    )


def test_one_send_per_call_and_the_pools_health_check_when_due(store, monkeypatch):
    assert _exchange(store).consented  # connected (AUTH, SELECT... happen once, here)
    connection = store._request_connection()
    interval = store.client.connection_pool.connection_kwargs["health_check_interval"]
    assert connection.health_check_interval == interval > 0
    sent = _record_sends(connection, monkeypatch)
    _exchange(store, events=[{"k": KEY, "d": '{"n":"page_view"}'}])
    _exchange(store)
    assert sent == ["EVALSHA", "EVALSHA"]
    sent.clear()
    connection.next_health_check = 0  # as if idle for longer than the interval
    assert _exchange(store).consented
    assert sent == ["PING", "EVALSHA"]


def test_reconnects_once_when_the_server_dropped_the_connection(store):
    assert _exchange(store).consented
    connection = store._request_connection()
    old_port = _port(connection)
    store.client.client_kill_filter(_id=int(_server_entry(store, old_port)["id"]))
    assert _exchange(store).consented  # reconnected once, transparently
    assert store._request_connection() is connection and _port(connection) != old_port


def test_reconnects_when_the_health_check_finds_the_connection_dropped(store):
    assert _exchange(store).consented
    connection = store._request_connection()
    store.client.client_kill_filter(_id=int(_server_entry(store, _port(connection))["id"]))
    connection.next_health_check = 0
    assert _exchange(store).consented


def test_reloads_the_script_after_the_server_forgot_it(store):
    assert _exchange(store).consented
    port = _port(store._request_connection())
    store.client.script_flush()
    assert _exchange(store).consented
    assert _port(store._request_connection()) == port  # a NOSCRIPT reply keeps the connection


class FailingAfterFirstCall:
    """A server that completes the connection handshake and answers the first EVALSHA, then
    answers every later one with ``later`` (nothing: it stays silent); it counts the
    connections made to it."""

    def __init__(self, later: bytes = b""):
        self.later = later
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.evalsha = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        reader = hiredis.Reader()
        while chunk := conn.recv(65536):
            reader.feed(chunk)
            while (command := reader.gets()) is not False:
                name = command[0].upper()
                if name == b"HELLO":  # redis-py asks for RESP3
                    conn.sendall(b"%1\r\n+proto\r\n:3\r\n")
                    continue
                if name != b"EVALSHA":
                    conn.sendall(b"+OK\r\n")  # CLIENT SETINFO...
                    continue
                self.evalsha += 1
                if self.evalsha == 1:
                    conn.sendall(b"*1\r\n:-1\r\n")  # no consent state
                elif self.later:
                    conn.sendall(self.later)

    def close(self):
        self.listener.close()


def test_a_silent_server_times_out_as_unavailable_without_trying_again():
    server = FailingAfterFirstCall()
    try:
        backend = RedisBackend(
            {"URL": f"redis://127.0.0.1:{server.port}/0", "REQUEST_TIMEOUT": 0.5, "KEY_PREFIX": "x"}
        )
        assert _exchange(backend).consented is None
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="Timeout"):
            _exchange(backend)
        elapsed = time.monotonic() - started
        # One timeout's wait on the reused connection: no reconnection and second call after it.
        assert (server.connections, server.evalsha) == (1, 2)
        assert 0.45 < elapsed < 0.95
    finally:
        server.close()


def test_a_loading_server_is_unavailable_without_reconnecting():
    # redis-py raises the LOADING reply as a kind of ConnectionError: not a dropped connection.
    server = FailingAfterFirstCall(b"-LOADING Redis is loading the dataset in memory\r\n")
    try:
        backend = RedisBackend({"URL": f"redis://127.0.0.1:{server.port}/0", "KEY_PREFIX": "x"})
        assert _exchange(backend).consented is None
        with pytest.raises(BackendUnavailable, match="loading"):
            _exchange(backend)
        assert (server.connections, server.evalsha) == (1, 2)
    finally:
        server.close()


def test_no_redis_py_retries_on_the_request_connection_whatever_the_pools(store):
    # With retries, an unreachable server would cost a page several waits with backoff.
    pool = store.client.connection_pool
    pool.connection_kwargs["retry"] = Retry(ExponentialBackoff(), 5)
    assert pool.make_connection().retry.get_retries() == 5
    assert store._request_connection().retry.get_retries() == 0
    assert _exchange(store).consented


def test_an_unreachable_server_is_unavailable():
    backend = RedisBackend({"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "x"})
    with pytest.raises(BackendUnavailable):
        _exchange(backend)


def test_a_forked_process_opens_its_own_connection(store):
    assert _exchange(store).consented
    parent = store._request_connection()
    parent_port = _port(parent)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not use (nor shut down) the parent's socket
        try:
            ok = _exchange(store).consented
            child = store._request_connection()
            ok = ok and child is not parent and _port(child) != parent_port
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert _exchange(store).consented
    # The parent's connection is intact: still the same socket, not a reconnection.
    assert store._request_connection() is parent and _port(parent) == parent_port


def test_each_thread_has_its_own_connection_closed_when_the_thread_ends(store):
    assert _exchange(store).consented
    main_port = _port(store._request_connection())
    ports = []

    def page_view():
        assert _exchange(store).consented
        ports.append(_port(store._request_connection()))

    # Without the cyclic garbage collector: the connection must not wait for a collection.
    gc.disable()
    try:
        thread = threading.Thread(target=page_view)
        thread.start()
        thread.join()
        assert len(ports) == 1 and ports[0] != main_port
        deadline = time.monotonic() + 2
        while _server_entry(store, ports[0]) is not None:
            assert time.monotonic() < deadline, "an ended thread's connection is still open"
            time.sleep(0.05)
    finally:
        gc.enable()
    assert _server_entry(store, main_port) is not None


def test_wrong_password_is_unavailable_not_a_crash(store):
    url = settings.SEGMENTS_BACKEND["OPTIONS"]["URL"].replace("redis://", "redis://nobody:wrong@")
    backend = RedisBackend({"URL": url, "KEY_PREFIX": "x"})
    with pytest.raises(BackendUnavailable):
        _exchange(backend)
    with pytest.raises(redis.RedisError):
        backend.client.ping()  # redis-py agrees


def _with_credentials(url: str, username: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{username}:{password}@{parts.hostname}:{parts.port or 6379}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def acl_user(store):
    """A Redis user allowed only the test's keys, deleted after the test."""
    name = f"tailored-test-{os.getpid()}-{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    store.client.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{store.prefix}:*"],
        commands=["+@all", "-@dangerous"],
    )
    yield name, password
    store.client.acl_deluser(name)


def test_authenticates_as_the_urls_user(store, acl_user):
    name, password = acl_user
    url = _with_credentials(settings.SEGMENTS_BACKEND["OPTIONS"]["URL"], name, password)
    backend = _consenting(RedisBackend(_options(URL=url)))
    result = _exchange(backend, events=[{"k": KEY, "d": '{"n":"page_view"}'}])
    assert result.consented is True
    entry = _server_entry(store, _port(backend._request_connection()))
    assert entry["user"] == name
    assert entry["db"] == str(urlsplit(url).path.strip("/") or 0)
    wrong = RedisBackend(_options(URL=_with_credentials(url, name, "not-" + password)))
    with pytest.raises(BackendUnavailable):
        _exchange(wrong)


@pytest.fixture
def tls_server(tmp_path):
    """A Redis server of its own speaking only TLS, with a password; stopped after the test."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if not (server and openssl):
        pytest.skip("needs redis-server and openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = secrets.token_hex(16)
    process = subprocess.Popen(
        [
            *(server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
            *("--requirepass", password, "--save", "", "--appendonly", "no"),
            *("--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://:{password}@127.0.0.1:{port}/3?ssl_ca_certs={cert}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.skip("this redis-server does not support TLS")
                assert time.monotonic() < deadline, "the TLS server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_tls_with_a_password(tls_server):
    backend = _consenting(RedisBackend({"URL": tls_server, "KEY_PREFIX": "tls"}))
    result = _exchange(backend, events=[{"k": KEY, "d": '{"n":"page_view"}'}])
    assert result.consented is True and result.drain_needed is True
    connection = backend._request_connection()
    assert isinstance(connection, SSLConnection)
    assert isinstance(connection._sock, ssl.SSLSocket)
    stream = backend._stream(backend.partition_for(KEY))
    assert [f["d"] for _, f in backend.client.xrange(stream)] == ['{"n":"page_view"}']
    plain_url = tls_server.replace("rediss://", "redis://").split("?")[0]
    plain = RedisBackend({"URL": plain_url, "KEY_PREFIX": "x"})
    with pytest.raises(BackendUnavailable):
        _exchange(plain)  # the server speaks only TLS
