"""The scale-out benchmark: the same Online Retail replay drained by 1, 2 and 4 Celery worker
processes, with the fast store and event stream on one Redis master and on a Redis Cluster of
three masters, side by side in one run; throughput (events/s, per worker process and per core)
and freshness (from an event to the membership it causes being visible to the next request).

Each configuration gets a Redis of its own (started here on free ports, stopped at the end), a
fresh PostgreSQL database (a copy of one migrated database), the same events imported into the
stream, then a worker started with that many processes. The broker stays the shared Redis.
"""

import gzip
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .pipeline import DATA, Environment, _fmt, log

WORKERS = (1, 2, 4)
MASTERS = (1, 3)
PARTITIONS = 12  # divisible by every worker count, spread over the three masters


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port > 55_000:
            continue  # a cluster node's bus port is 10,000 above its own
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class Store:
    """``masters`` redis-server processes: one plain server, or a cluster (slots split evenly,
    joined with CLUSTER MEET). Append-only file fsynced every second, as in production."""

    def __init__(self, masters: int):
        import redis

        self.redis = redis
        self.masters = masters
        self.dir = Path(tempfile.mkdtemp(prefix="tailored-scale-"))
        self.ports = [_free_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen] = []

    @property
    def cluster(self) -> bool:
        return self.masters > 1

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def __enter__(self) -> "Store":
        for port in self.ports:
            home = self.dir / str(port)
            home.mkdir()
            args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(home)]
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            self.procs.append(
                subprocess.Popen(
                    [shutil.which("redis-server") or "redis-server", *args],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self._wait(lambda: all(self._node(p).ping() for p in self.ports))
        if self.cluster:
            share = 16384 // self.masters
            for n, port in enumerate(self.ports):
                last = 16384 if n == self.masters - 1 else (n + 1) * share
                self._node(port).execute_command("CLUSTER ADDSLOTSRANGE", n * share, last - 1)
            for port in self.ports[1:]:
                self._node(self.ports[0]).execute_command("CLUSTER MEET", "127.0.0.1", port)

            def ready() -> bool:
                for port in self.ports:
                    info = self._node(port).execute_command("CLUSTER INFO")
                    if info.get("cluster_state") != "ok":
                        return False
                    if int(info.get("cluster_known_nodes", 0)) != self.masters:
                        return False
                return True

            self._wait(ready)
        return self

    def _node(self, port: int):
        return self.redis.Redis(port=port, socket_timeout=5, decode_responses=True)

    def _wait(self, probe, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe():
                    return
            except self.redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark's Redis did not start")
            time.sleep(0.05)

    def used_memory(self) -> int:
        return sum(int(self._node(p).info("memory")["used_memory"]) for p in self.ports)

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _sample(lines: int) -> Path:
    """The first ``lines`` lines of the Online Retail file (quick runs)."""
    path = Path(tempfile.gettempdir()) / f"tailored-scale-retail-{lines}.csv.gz"
    if not path.exists():
        with gzip.open(DATA, "rb") as src, gzip.open(path, "wb") as dst:
            for n, line in enumerate(src):
                if n > lines:
                    break
                dst.write(line)
    return path


def _forget_drains(env: Environment, store: Store) -> None:
    import redis

    from .pipeline import REDIS_URL

    redis.Redis.from_url(REDIS_URL).delete(env.env["CELERY_QUEUE"])
    prefix = env.env["BENCH_KEY_PREFIX"]
    client = (
        redis.RedisCluster.from_url(store.url) if store.cluster else redis.Redis.from_url(store.url)
    )
    for key in list(client.scan_iter(match=f"{prefix}:*drain*")):
        client.delete(key)
    client.close()


def _copy_database(env: Environment, template: str, name: str) -> None:
    import psycopg

    with psycopg.connect(env.admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def _drop_database(env: Environment, name: str) -> None:
    import psycopg

    with psycopg.connect(env.admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(options) -> dict:
    quick = getattr(options, "quick", False)
    data = _sample(60_000) if quick else DATA
    rate, seconds, probes = (500, 6, 30) if quick else (1000, 15, 60)
    env = Environment()
    env.env["DJANGO_SETTINGS_MODULE"] = "bench.settings_scale"
    env.env["BENCH_PARTITIONS"] = str(PARTITIONS)
    env.env["CELERY_QUEUE"] = f"tbp{env.run_id}-queue"
    template = env.db
    base_url = env.env["BENCH_DATABASE_URL"].rsplit("/", 1)[0]
    result: dict = {"quick": quick, "cores": os.cpu_count(), "runs": []}
    try:
        with Store(1) as store:  # migrate once; each configuration copies the database
            env.env["BENCH_STORE_URL"] = store.url
            log("migrating a fresh PostgreSQL database")
            env.run("manage.py", "migrate", "--noinput", "-v0")
            result["setup"] = env.role("setup")
        for masters in MASTERS:
            for workers in WORKERS:
                result["runs"].append(
                    _one(env, template, base_url, data, masters, workers, rate, seconds, probes)
                )
    finally:
        env.env["BENCH_DATABASE_URL"] = f"{base_url}/{template}"
        env.close()
    return result


def _one(env, template, base_url, data, masters, workers, rate, seconds, probes) -> dict:
    name = f"{template}_m{masters}w{workers}"
    _copy_database(env, template, name)
    env.env["BENCH_DATABASE_URL"] = f"{base_url}/{name}"
    try:
        with Store(masters) as store:
            env.env["BENCH_STORE_URL"] = store.url
            env.env["BENCH_STORE_CLUSTER"] = "1" if store.cluster else "0"
            log(f"{masters} master(s), {workers} worker process(es): importing")
            _rows, queued, _visitors = env.import_retail(data)
            # The drains the import scheduled are forgotten, so the timed ones start together
            # once the worker is ready (see pipeline_tasks.process).
            _forget_drains(env, store)
            env.start_worker(concurrency=workers)
            try:
                processed = env.role("process", str(queued))
                log(f"  drained {queued} events in {processed['seconds']:.1f} s; freshness")
                try:
                    fresh = env.role("freshness", str(rate), str(seconds), str(probes))
                except RuntimeError as exc:
                    log(f"  freshness failed: {str(exc)[-300:]}")
                    fresh = {"rate": 0, "probes": 0, "seen": 0, "p50_ms": None, "p99_ms": None}
            finally:
                env.stop_worker()
            memory = store.used_memory()
    finally:
        _drop_database(env, name)
    elapsed = processed["seconds"]
    per_second = queued / elapsed if elapsed else None
    cores = min(workers, os.cpu_count() or 1)
    return {
        "masters": masters,
        "workers": workers,
        "events": queued,
        "seconds": elapsed,
        "per_second": per_second,
        "per_worker": per_second / workers if per_second else None,
        "per_core": per_second / cores if per_second else None,
        "freshness": fresh,
        "redis_bytes": memory,
    }


def rows(result: dict) -> list[tuple]:
    out = []
    for r in result["runs"]:
        f = r["freshness"]
        label = f"{r['masters']} master{'s' if r['masters'] > 1 else ''}, {r['workers']} worker"
        out.append(
            (
                f"{label} process{'es' if r['workers'] > 1 else ''} (events/s)",
                _fmt(r["per_second"]),
                f"{_fmt(r['per_core'])}/core",
                f"p50 {_fmt(f['p50_ms'], ' ms', 1)}",
                f"p99 {_fmt(f['p99_ms'], ' ms', 1)}",
                "",
            )
        )
    return out


def details(result: dict) -> str:
    runs = result["runs"]
    if not runs:
        return ""
    first = runs[0]
    f = first["freshness"]
    return (
        f"{first['events']:,} Online Retail events per configuration"
        f"{' (quick: the first 60,000 lines)' if result['quick'] else ''}, "
        f"{result['setup']['segments']} segments, {PARTITIONS} partitions; freshness at "
        f"{f['rate']:.0f} events/s with {f['probes']} probes after the replay; "
        f"{result['cores']} cores shared by the workers, PostgreSQL and Redis (per core: "
        "events/s over min(worker processes, cores)). Columns: events/s, per core, freshness "
        "p50, p99. Redis used_memory after each run (all masters): "
        + ", ".join(
            f"{r['masters']}m/{r['workers']}w {r['redis_bytes'] / 2**20:.0f} MiB" for r in runs
        )
        + "."
    )
