"""Pipeline benchmarks: throughput on the Online Retail data (and a one-task-per-event design
as the baseline), freshness under a steady load, and memory and cost per event as the number
of visitors grows. Each step runs in subprocesses and real Celery worker processes against
PostgreSQL and Redis; the figures are measured side by side in one run.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .report import verdict

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(
    os.environ.get(
        "BENCH_RETAIL_DATA",
        ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz",
    )
)
if not DATA.exists():  # a clone outside the workplace
    DATA = Path("/work/shared/data/online_retail/online_retail.csv.gz")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_PIPELINE_REDIS_URL", "redis://127.0.0.1:6379/11")

TARGET_RATE = 20_000
# Product pages made for the most bought stock codes before the replay (recommendations on).
RECOMMENDATION_ITEMS = 300
TARGET_RATIO = 40
TARGET_TOTAL_SECONDS = 60
TARGET_P50_MS, TARGET_P99_MS = 100, 500
TARGET_BYTES = 1024
FRESHNESS_RATE = 1000  # events/s offered while freshness is probed
RATE_TOLERANCE = 0.95  # the load generator's own jitter


def log(message: str) -> None:
    print(f"  [pipeline] {message}", file=sys.stderr, flush=True)


class Environment:
    def __init__(self, suffix: str = "", **env: str):
        import psycopg

        self.run_id = f"{os.getpid()}{suffix}"
        self.db = f"tailored_bench_pipe_{self.run_id}"
        self.admin = POSTGRES_URL.rstrip("/") + "/postgres"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}"')
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="bench.settings_pipeline",
            BENCH_DATABASE_URL=POSTGRES_URL.rstrip("/") + "/" + self.db,
            BENCH_REDIS_URL=REDIS_URL,
            BENCH_KEY_PREFIX=f"tbp{self.run_id}",
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(ROOT),
            **env,
        )
        self.worker: subprocess.Popen | None = None
        self.python = sys.executable

    def run(self, *args: str, timeout: float = 900) -> str:
        out = subprocess.run(
            [self.python, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def import_retail(self, data: Path = DATA) -> tuple[int, int, int]:
        """Queue the Online Retail file (``data``) as the production import does, with the
        preset mapping, every row consented and inside the retention window, and nothing
        drained (the workers are timed doing that): ``(rows, events queued, visitors)``."""
        out = self.run(
            *("manage.py", "import_events", str(data), "--mapping", "online-retail"),
            "--as-of",
            "2011-12-10",  # the data's last day: every row lies inside the retention window
            *("--assume-consent", "--no-process"),
        )
        match = re.search(r"(\d+) rows, (\d+) events queued for (\d+) visitors", out)
        if match is None:
            raise RuntimeError(f"import_events said something unexpected:\n{out[-2000:]}")
        rows, queued, visitors = (int(g) for g in match.groups())
        return rows, queued, visitors

    def role(self, *args: str) -> dict:
        return json.loads(self.run("-m", "bench.pipeline_tasks", *args).strip().splitlines()[-1])

    def start_worker(self, concurrency: int = 2, include: str = "") -> None:
        log_path = Path(f"/tmp/tailored-bench-worker-{self.run_id}.log")
        handle = log_path.open("w")
        args = [
            self.python,
            "-m",
            "celery",
            "-A",
            "demo",
            "worker",
            f"--concurrency={concurrency}",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-O",
            "fair",
            "--loglevel=WARNING",
            "-Q",
            f"tbp{self.run_id}-queue",
            f"--hostname=bench{time.time_ns()}@%h",
        ]
        if include:
            args += ["--include", include]
        self.worker = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ready once it consumes from its queue
            if self.worker.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            replies = client.execute_command("CLIENT", "LIST")
            if b"cmd=brpop" in replies or b"cmd=blpop" in replies:
                return
            time.sleep(0.2)
        raise RuntimeError("the Celery worker did not start")

    def worker_cpu_seconds(self) -> float | None:
        """CPU seconds (user + system) used so far by the worker and its pool processes, read
        from /proc (None where there is none)."""
        if not self.worker or self.worker.poll() is not None:
            return None
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            stats = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        text = Path(f"/proc/{entry}/stat").read_text()
                    except OSError:
                        continue
                    fields = text.rsplit(")", 1)[1].split()
                    # After the name: state, ppid (index 1), ..., utime (11), stime (12),
                    # and the same of its children that ended (13, 14: pool processes
                    # replaced).
                    stats[int(entry)] = (int(fields[1]), sum(map(int, fields[11:15])))
        except (OSError, ValueError):
            return None
        tree, grew = {self.worker.pid}, True
        while grew:
            grew = False
            for pid, (ppid, _t) in stats.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        total = sum(stats[pid][1] for pid in tree if pid in stats)
        return total / ticks

    def stop_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        self.worker = None

    def close(self) -> None:
        import psycopg
        import redis

        self.stop_worker()
        # Only this run's keys (and its queue): the Redis database may be shared.
        client = redis.Redis.from_url(REDIS_URL)
        for pattern in (f"tbp{self.run_id}*", f"_kombu*tbp{self.run_id}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for n in range(0, len(keys), 500):
                client.delete(*keys[n : n + 500])
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


STEPS = ("throughput", "baseline", "freshness", "scaling")


class Busy:
    """Processes that keep every core busy (a machine shared with other work), for the
    freshness figure under contention."""

    def __init__(self, processes: int):
        self.processes = processes
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        code = "import time\nwhile True:\n    sum(range(10000))"
        self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(self.processes)]
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def run(options) -> dict:
    quick = getattr(options, "quick", False)
    steps = getattr(options, "pipeline_steps", None) or STEPS
    env = Environment()
    result: dict = {"quick": quick}
    try:
        log("migrating a fresh PostgreSQL database")
        env.run("manage.py", "migrate", "--noinput", "-v0")
        result["setup"] = env.role("setup")
        if "throughput" in steps:
            _throughput(env, result)
        if "baseline" in steps:
            _baseline(env, result, quick)
        if "freshness" in steps:
            _freshness(env, result, quick)
        if "scaling" in steps:
            _scaling(env, result, quick)
    finally:
        env.close()
    return result


def _freshness(env: Environment, result: dict, quick: bool) -> None:
    """Freshness at 1,000 events/s with the default worker (one process per core), on the
    machine as it is and with every core kept busy by other processes."""
    seconds = 8 if quick else 20
    probes = "50" if quick else "100"
    for name, busy in (("freshness", 0), ("freshness_busy", os.cpu_count() or 2)):
        log(
            f"{name}: {FRESHNESS_RATE} events/s for {seconds} s"
            + (f", {busy} busy processes" if busy else "")
        )
        env.start_worker(concurrency=os.cpu_count() or 2)
        with Busy(busy):
            result[name] = env.role("freshness", str(FRESHNESS_RATE), str(seconds), probes)
        env.stop_worker()


def _throughput(env: Environment, result: dict) -> None:
    """Throughput on the Online Retail data (keyed hashes of the customer numbers), with
    recommendations on (product pages for the most bought stock codes, so the purchases name
    items); then the same in a fresh database and key prefix with recommendations off (no
    event weighs anything: the step does no work), for the with/without ratio in one run."""
    _replay(env, result, "throughput")
    log("the same replay with recommendations off, in a fresh database")
    without = Environment("r0", BENCH_RECOMMENDATIONS="off")
    try:
        without.run("manage.py", "migrate", "--noinput", "-v0")
        without.role("setup")
        _replay(without, result, "throughput_without_recommendations")
    finally:
        without.close()


def _replay(env: Environment, result: dict, name: str) -> None:
    # 1. Throughput on the Online Retail data.
    result.setdefault("recommendation_items", env.role("items", str(RECOMMENDATION_ITEMS)))
    log("importing the Online Retail data into the stream")
    started = time.perf_counter()
    rows, queued, visitors = env.import_retail()
    import_seconds = time.perf_counter() - started
    log(f"{queued} events queued; draining with a 2-process Celery worker")
    env.start_worker(concurrency=2)
    cpu_before = env.worker_cpu_seconds()  # started, idle: what its start-up took
    processed = env.role("process", str(queued))
    cpu_after = env.worker_cpu_seconds()
    env.stop_worker()
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    result[name] = {
        "rows": rows,
        "events": queued,
        "visitors": visitors,
        "import_seconds": import_seconds,
        "process_seconds": processed["seconds"],
        "per_second": queued / processed["seconds"] if processed["seconds"] else None,
        # Worker CPU seconds per 100,000 events: the work itself, whatever else the machine
        # runs (events/s falls with the machine's load; this much less).
        "cpu_per_100k": cpu * 100_000 / queued if cpu is not None and queued else None,
    }


def _baseline(env: Environment, result: dict, quick: bool) -> None:
    """The same kind of work, one Celery task per event."""
    count = 1000 if quick else 3000
    log(f"baseline: {count} events as one task each")
    env.role("baseline-publish", str(count))
    env.start_worker(concurrency=2, include="bench.pipeline_tasks")
    result["baseline"] = env.role("baseline-wait", str(count))
    env.stop_worker()


def _scaling(env: Environment, result: dict, quick: bool) -> None:
    """Memory per visitor and cost per event as visitors grow."""
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    result["scaling"] = []
    for size in sizes:
        log(f"memory and cost per event with {size:,} visitors")
        result["scaling"].append(env.role("memory", str(size), "20000"))


def _fmt(value, unit="", digits=0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def rows(result: dict) -> list[tuple]:
    out = []
    t, b = result.get("throughput"), result.get("baseline")
    rate = t["per_second"] if t else None
    base = b["per_second"] if b else None
    if t:
        out.append(
            (
                "Pipeline throughput, Online Retail (events/s)",
                _fmt(rate),
                "",
                "",
                f">= {TARGET_RATE:,}",
                verdict(bool(rate and rate >= TARGET_RATE)),
            )
        )
    w = result.get("throughput_without_recommendations")
    if t and w:
        without = w["per_second"]
        out.append(
            (
                "  with / without recommendations (throughput)",
                _fmt(rate / without if rate and without else None, "x", 2),
                f"{_fmt(without)} without",
                "",
                "",
                "",
            )
        )
    if t and t.get("cpu_per_100k") is not None:
        cpu_without = (w or {}).get("cpu_per_100k")
        out.append(
            (
                "  worker CPU seconds per 100k events",
                _fmt(t["cpu_per_100k"], " s", 1),
                f"{_fmt(cpu_without, ' s', 1)} without" if cpu_without is not None else "",
                f"{t['cpu_per_100k'] / cpu_without:.2f}x" if cpu_without else "",
                "",
                "",
            )
        )
    if b:
        out.append(("One task per event (baseline, events/s)", _fmt(base), "", "", "", ""))
    if t and b:
        ratio = rate / base if rate and base else None
        out.append(
            (
                "  batched / one task per event",
                _fmt(ratio, "x", 1),
                _fmt(base),
                "",
                f">= {TARGET_RATIO}x",
                verdict(bool(ratio and ratio >= TARGET_RATIO)),
            )
        )
    if t:
        total = t["import_seconds"] + (t["process_seconds"] or float("inf"))
        out.append(
            (
                f"All {t['rows']:,} lines imported + processed (s)",
                _fmt(total, " s", 1),
                f"import {t['import_seconds']:.1f} s",
                "",
                f"< {TARGET_TOTAL_SECONDS} s",
                verdict(total < TARGET_TOTAL_SECONDS),
            )
        )
    for key, label in (("freshness", ""), ("freshness_busy", ", cores busy")):
        f = result.get(key)
        if not f:
            continue
        all_seen = f["seen"] == f["probes"]
        # The freshness targets hold at a load of FRESHNESS_RATE events/s: a run whose load
        # generator could not keep that rate (a busy machine) proves nothing about it.
        at_rate = bool(f["rate"] and f["rate"] >= FRESHNESS_RATE * RATE_TOLERANCE)
        out += [
            (
                f"Freshness load reached{label} (events/s)",
                _fmt(f["rate"]),
                "",
                "",
                f">= {FRESHNESS_RATE * RATE_TOLERANCE:,.0f}",
                verdict(at_rate),
            ),
            (
                f"Freshness p50 at {f['rate']:.0f} events/s{label}",
                _fmt(f["p50_ms"], " ms", 1),
                "",
                "",
                f"<= {TARGET_P50_MS} ms",
                verdict(bool(f["p50_ms"] and f["p50_ms"] <= TARGET_P50_MS)),
            ),
            (
                f"Freshness p99{label}",
                _fmt(f["p99_ms"], " ms", 1),
                f"{f['seen']}/{f['probes']} seen",
                "",
                f"<= {TARGET_P99_MS} ms",
                verdict(bool(all_seen and f["p99_ms"] and f["p99_ms"] <= TARGET_P99_MS)),
            ),
        ]
    scaling = result.get("scaling") or []
    first = scaling[0] if scaling else None
    for s in scaling:
        growth = s["us_per_event"] / first["us_per_event"]
        out.append(
            (
                f"Redis bytes per visitor, {s['visitors']:,} visitors",
                _fmt(s["bytes_per_visitor"]),
                "",
                "",
                f"<= {TARGET_BYTES}",
                verdict(s["bytes_per_visitor"] <= TARGET_BYTES),
            )
        )
        out.append(
            (
                f"  cost per event, {s['visitors']:,} visitors",
                _fmt(s["us_per_event"], " µs"),
                _fmt(first["us_per_event"], " µs"),
                f"{growth:.2f}x",
                "flat",
                "",
            )
        )
    return out


def details(result: dict) -> str:
    parts = []
    t = result.get("throughput")
    if t:
        parts.append(
            f"Throughput: {t['events']:,} purchase events ({t['rows']:,} lines, cancellations "
            f"as refunds, lines without a customer skipped) for {t['visitors']:,} visitors, "
            f"{result['setup']['segments']} segments, drained by one Celery worker with 2 "
            f"processes (this machine has 2 cores, shared with PostgreSQL and Redis). "
            f"Recommendations on: {result.get('recommendation_items', {}).get('items', 0)} "
            "product pages for the most bought stock codes (their co-occurrence, popularity and "
            "each customer's list kept by the drain); the without figure is the same replay in "
            "a fresh database with recommendations off."
        )
    for key in ("freshness", "freshness_busy"):
        f = result.get(key)
        if f:
            parts.append(
                f"{key}: {f['probes']} probes over {f['partitions_probed']} of "
                f"{f['partitions']} partitions (keyed-hash visitor keys), {f['seen']} seen, "
                f"max {_fmt(f['max_ms'], ' ms', 1)}."
            )
    return " ".join(parts)
