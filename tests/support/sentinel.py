"""Redis Sentinel of the test's own: a master, a replica and three Sentinels (``redis-server
--sentinel``) on free ports, all stopped (always) when the fixture ends. :meth:`crash_master`
kills the master and waits for the Sentinels to promote the replica."""

import subprocess
import time
from pathlib import Path

import pytest
import redis

from .faults import free_port, redis_server

NAME = "tailored"


class SentinelGroup:
    def __init__(self, directory: Path):
        self.binary = redis_server()
        self.dir = directory
        self.master, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen] = {}

    def _spawn(self, port: int, *args: str) -> None:
        home = self.dir / str(port)
        home.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [self.binary, *args],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _server(self, port: int, *extra: str) -> None:
        self._spawn(
            port,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *(
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.dir / str(port)),
            ),
            *extra,
        )

    def start(self) -> None:
        self._server(self.master)
        self._server(self.replica, "--replicaof", "127.0.0.1", str(self.master))
        for port in self.sentinels:
            config = self.dir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {NAME} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {NAME} 1000\n"
                f"sentinel failover-timeout {NAME} 5000\n"
                f"sentinel parallel-syncs {NAME} 1\n"
            )
            self._spawn(port, str(config), "--sentinel")
        self.wait(lambda: self.node(self.replica).info("replication")["master_link_status"] == "up")
        self.wait(
            lambda: all(
                self.node(s).sentinel_master(NAME)["num-other-sentinels"] == 2
                and self.node(s).sentinel_master(NAME)["num-slaves"] == 1
                for s in self.sentinels
            )
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinels]

    def wait(self, probe, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe():
                    return
            except (redis.RedisError, KeyError):
                pass
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)

    def current_master(self) -> int:
        _host, port = self.node(self.sentinels[0]).sentinel_get_master_addr_by_name(NAME)
        return int(port)

    def crash_master(self) -> None:
        """Kill the master (no shutdown, as a crash) and wait for the replica's promotion."""
        old = self.current_master()
        process = self.processes.pop(old)
        process.kill()
        process.wait(timeout=10)
        new = self.replica if old == self.master else self.master
        self.wait(lambda: self.current_master() == new)
        self.wait(lambda: self.node(new).info("replication")["role"] == "master")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes = {}


@pytest.fixture
def redis_sentinel(tmp_path):
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        group.start()
        yield group
    finally:
        group.stop()
