"""The request path's direct Redis call (segments.backends.fastpath) against the real server:
it reconnects after the server drops it, reloads a forgotten script, times out instead of
hanging, and a forked process never shares its socket."""

import os
import socket
import threading
import time

import pytest
import redis
from django.conf import settings

from segments.backends.base import BackendUnavailable
from segments.backends.redis import RedisBackend

pytestmark = pytest.mark.services
KEY = "ab12cd34" * 8


@pytest.fixture
def store():
    options = dict(settings.SEGMENTS_BACKEND["OPTIONS"])
    options["KEY_PREFIX"] += "-fastpath"
    backend = RedisBackend(options)
    backend.flush()
    backend.set_consent(KEY, {"tracking": time.time() + 3600}, "7", 3600)
    yield backend
    backend.flush()


def _exchange(backend, **kwargs):
    return backend.exchange(KEY, purpose="tracking", notice_version="7", now=time.time(), **kwargs)


def _own_client_id(backend) -> int:
    port = backend._fast._local.sock.getsockname()[1]
    for client in backend.client.client_list():
        if client["addr"].endswith(f":{port}"):
            return int(client["id"])
    raise AssertionError("the fast path's connection is not in CLIENT LIST")


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


def test_reconnects_when_the_server_dropped_the_connection(store):
    assert _exchange(store).consented
    store.client.client_kill_filter(_id=_own_client_id(store))
    assert _exchange(store).consented  # reconnected once, transparently


def test_reloads_the_script_after_the_server_forgot_it(store):
    assert _exchange(store).consented
    store.client.script_flush()
    assert _exchange(store).consented


def test_a_silent_server_times_out_as_unavailable():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    backend = RedisBackend(
        {"URL": f"redis://127.0.0.1:{port}/0", "SOCKET_TIMEOUT": 0.2, "KEY_PREFIX": "x"}
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        _exchange(backend)
    assert time.monotonic() - started < 2
    listener.close()


def test_an_unreachable_server_is_unavailable():
    backend = RedisBackend({"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "x"})
    with pytest.raises(BackendUnavailable):
        _exchange(backend)


def test_a_forked_process_opens_its_own_connection(store):
    assert _exchange(store).consented
    parent_socket = store._fast._local.sock
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not use the parent's socket
        try:
            ok = _exchange(store).consented and store._fast._local.sock is not parent_socket
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert store._fast._local.sock is parent_socket
    assert _exchange(store).consented  # the parent's connection is intact


def test_wrong_password_is_unavailable_not_a_crash(store):
    url = settings.SEGMENTS_BACKEND["OPTIONS"]["URL"].replace("redis://", "redis://nobody:wrong@")
    backend = RedisBackend({"URL": url, "KEY_PREFIX": "x"})
    with pytest.raises(BackendUnavailable):
        _exchange(backend)
    with pytest.raises(redis.RedisError):
        backend.client.ping()  # redis-py agrees
