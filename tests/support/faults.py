"""Faults for the fault tests, made with real processes: a private ``redis-server`` that can be
stopped and restarted (with or without its data), and a TCP proxy that can cut every connection
or delay every byte, put between a process and PostgreSQL or Redis."""

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis


def redis_server() -> str:
    """The ``redis-server`` binary for tests that start their own servers: skipped where it is
    missing, but a failure under CI (a missing service must fail the run there)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(
                "redis-server is missing: CI must run the cluster, Sentinel and fault tests"
            )
        pytest.skip("needs redis-server")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of the test's own, on a fixed port across restarts.

    With ``appendonly`` (the default) it keeps an append-only file fsynced on every write, as
    docs/installation.md asks of production: a restart keeps every acknowledged write.
    :meth:`restart` with ``empty=True`` deletes its files first (a server that lost its
    disk, or one run without persistence)."""

    def __init__(self, directory: Path, *, appendonly: bool = True):
        self.binary = redis_server()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ("--appendonly", "yes", "--appendfsync", "always")
            if self.appendonly
            else ("--appendonly", "no")
        )
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", *persistence, "--dir", str(self.dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no shutdown save: what a crash leaves is what is on disk
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, empty: bool = False, down_for: float = 0.0) -> None:
        self.stop()
        if empty:
            for path in self.dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        time.sleep(down_for)
        self.start()


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. :meth:`cut` closes every connection and
    refuses new ones until :meth:`restore`; ``delay`` (seconds) holds each chunk of data that
    long in each direction, as a slow network or a slow server would."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.delay = 0.0
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()  # refused while cut
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            src.setblocking(True)
            selector.register(src, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=0.2):
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            selector.close()
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)


@pytest.fixture
def tcp_proxy():
    proxies: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
