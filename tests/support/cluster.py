"""A real Redis Cluster of the test's own: three masters, each with a replica (six
``redis-server`` processes in cluster mode) on free ports, made one cluster by
``CLUSTER ADDSLOTS``, ``CLUSTER MEET`` and ``CLUSTER REPLICATE``, stopped (always) when the
fixture ends. :meth:`RedisCluster.move_slot` reshards one slot live, the way
``redis-cli --cluster reshard`` does it (``SETSLOT IMPORTING`` / ``MIGRATING``, ``MIGRATE`` of
its keys, ``SETSLOT NODE``); :meth:`LocalCluster.paused` stops a process for a while (a replica
that does not answer)."""

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from .faults import free_port, redis_server

SLOTS = 16384


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too."""
    while True:
        port = free_port()
        if port > 55_000:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class LocalCluster:
    def __init__(self, directory: Path, masters: int = 3, replicas: int = 1):
        self.binary = redis_server()
        self.dir = directory
        self.ports = [_cluster_port() for _ in range(masters)]  # the masters
        # Each master's replicas, by the master's port.
        self.replicas = {port: [_cluster_port() for _ in range(replicas)] for port in self.ports}
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def all_ports(self) -> list[int]:
        return [*self.ports, *(r for replicas in self.replicas.values() for r in replicas)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5, decode_responses=True)

    def start(self) -> None:
        for port in self.all_ports:
            home = self.dir / str(port)
            home.mkdir(parents=True, exist_ok=True)
            self.processes[port] = subprocess.Popen(
                [
                    *(self.binary, "--port", str(port), "--bind", "127.0.0.1"),
                    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", "2000", "--save", "", "--dir", str(home)),
                    *("--appendonly", "yes", "--appendfsync", "everysec"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for port in self.all_ports:
            self._wait(lambda p=port: self.node(p).ping())
        share = SLOTS // len(self.ports)
        for n, port in enumerate(self.ports):
            last = SLOTS if n == len(self.ports) - 1 else (n + 1) * share
            self.node(port).execute_command("CLUSTER ADDSLOTSRANGE", n * share, last - 1)
        for port in self.all_ports[1:]:
            self.node(self.ports[0]).execute_command("CLUSTER MEET", "127.0.0.1", port)

        def known(port: int) -> bool:
            info = self.node(port).execute_command("CLUSTER INFO")  # parsed by redis-py
            return int(info.get("cluster_known_nodes", 0)) == len(self.all_ports)

        self._wait(lambda: all(known(port) for port in self.all_ports))
        for master, replicas in self.replicas.items():
            for replica in replicas:
                self.node(replica).execute_command("CLUSTER REPLICATE", self.node_id(master))

        def ready():
            for port in self.all_ports:
                info = self.node(port).execute_command("CLUSTER INFO")
                if info.get("cluster_state") != "ok" or not known(port):
                    return False
            for master, replicas in self.replicas.items():
                links = self.node(master).info("replication")
                if int(links.get("connected_slaves", 0)) != len(replicas):
                    return False
                for replica in replicas:
                    if self.node(replica).info("replication").get("master_link_status") != "up":
                        return False
            return True

        self._wait(ready)

    def _wait(self, probe, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe():
                    return
            except redis.RedisError:
                pass
            assert all(p.poll() is None for p in self.processes.values()), "redis-server exited"
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # one paused by a failed test
                process.kill()
                process.wait(timeout=10)
        self.processes = {}

    @contextlib.contextmanager
    def paused(self, port: int):
        """The server on ``port`` stopped (SIGSTOP) inside the block, resumed after it."""
        process = self.processes[port]
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    def node_id(self, port: int) -> str:
        return self.node(port).execute_command("CLUSTER MYID")

    def owner(self, slot: int) -> int:
        for start, end, master, *_ in self.node(self.ports[0]).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(slot)

    def move_slot(self, slot: int, target: int, *, pause: float = 0.0) -> int:
        """Reshard ``slot`` to the node on port ``target`` while clients keep using it (keys
        move one ``MIGRATE`` at a time, ``pause`` seconds apart). Returns the keys moved."""
        source = self.owner(slot)
        src, dst = self.node(source), self.node(target)
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(source))
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", self.node_id(target))
        moved = 0
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            time.sleep(pause)
        for port in (target, source, *[p for p in self.ports if p not in (source, target)]):
            self.node(port).execute_command("CLUSTER SETSLOT", slot, "NODE", self.node_id(target))
        return moved


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
