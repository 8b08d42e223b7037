"""Benchmark "request cost": what the plugin adds to a Wagtail page view.

Scenarios, each in its own process with its own settings, on the same demo page (/guides/):

- ``baseline``: the page without the plugin (its middleware off, its template tags out);
- ``undecided``: with the plugin, a visitor who has not decided (the banner shows);
- ``refused``: with the plugin, a visitor who rejected everything;
- ``consented``: with the plugin, a visitor who accepted all, with 50 enabled rule segments
  (plus the demo's two) and a dozen earlier page views drained into memberships;
- ``consented-cluster``: the same with the fast store and event stream on a Redis Cluster of
  three masters started for the run (``bench.settings_cluster``; needs ``redis-server``);
- ``wp-baseline`` and ``wp``: the same page in a separate virtualenv holding
  wagtail-personalisation 1.0.0, without and with it (50 segments of 3 rules each).

All processes start first; then the orchestrator runs batches of page views round-robin, so
every scenario is measured under the same conditions, and compares each scenario with its
baseline round by round (the median of the per-round differences and ratios).
"""

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WP_VENV = ROOT / ".venv-bench-wp"
WP_REQUIREMENT = "wagtail-personalisation==1.0.0"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

# Targets of the issue.
TARGET_RATIO = 1.10
TARGET_PYTHON_MS = 0.1
TARGET_ROUND_TRIPS = 1
TARGET_VS_WP = 20.0
TARGET_EXPERIMENTS_MS = 0.05  # 20 running experiments on a page: added Python per request


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- services ------------------------------------------------------------------------------
@dataclass
class Services:
    database_url: str
    database: str  # description
    redis_url: str  # empty: embedded backend
    key_prefix: str
    _drop: list = field(default_factory=list)

    def close(self) -> None:
        for undo in reversed(self._drop):
            try:
                undo()
            except Exception as exc:
                log(f"cleanup failed: {exc}")


def start_services() -> Services:
    run_id = f"{os.getpid()}"
    prefix = f"tailored-bench-{run_id}"
    drops = []
    database_url, database = "", ""
    try:
        import psycopg

        name = f"tailored_bench_{run_id}"
        admin_url = POSTGRES_URL.rstrip("/") + "/postgres"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
            version = conn.execute("SHOW server_version").fetchone()[0]

        def drop_database():
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        drops.append(drop_database)
        database_url = POSTGRES_URL.rstrip("/") + "/" + name
        database = f"PostgreSQL {version} (database {name}, dropped after)"
    except Exception as exc:
        path = Path(tempfile.gettempdir()) / f"tailored_bench_{run_id}.sqlite3"
        database_url = f"sqlite:///{path}"
        database = f"SQLite {path} (PostgreSQL unavailable: {type(exc).__name__})"
        drops.append(lambda: path.unlink(missing_ok=True))
    redis_url = ""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        redis_url = REDIS_URL

        def flush_redis():
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for n in range(0, len(keys), 500):
                client.delete(*keys[n : n + 500])
            client.close()

        drops.append(flush_redis)
    except Exception as exc:
        log(f"Redis unavailable ({type(exc).__name__}): embedded backend, no round trips")
    return Services(database_url, database, redis_url, prefix, drops)


def run_worker(module: str, services: Services, *, quick: bool, settings: str) -> dict:
    """Run ``python -m <module> --worker`` against the started services (its database, Redis
    and key prefix in its environment) and return the JSON it prints last."""
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": services.database_url,
        "BENCH_REDIS_URL": services.redis_url,
        "BENCH_KEY_PREFIX": services.key_prefix,
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "BENCH_QUICK": "1" if quick else "",
    }
    out = subprocess.run(
        [sys.executable, "-m", module, "--worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the wagtail-personalisation virtualenv -------------------------------------------------
def _project_dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _constraints() -> str:
    """The main environment's versions, so both environments run the same Wagtail and Django."""
    from importlib.metadata import distributions

    skip = {"wagtail-tailored", "pip", "setuptools", "wheel"}
    lines = set()
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name not in skip:
            lines.add(f"{name}=={dist.version}")
    return "\n".join(sorted(lines)) + "\n"


def _wp_probe(python: Path) -> dict | None:
    code = (
        "import json, wagtail_personalisation, wagtail_modeladmin, django, wagtail, psycopg\n"
        "from importlib.metadata import version\n"
        "print(json.dumps({n: version(n) for n in ('wagtail-personalisation', 'wagtail', "
        "'Django', 'wagtail-modeladmin')}))"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def ensure_wp_venv() -> tuple[Path | None, list[str]]:
    """The separate virtualenv with wagtail-personalisation (created or updated on demand; the
    project's own .venv is never touched)."""
    notes = []
    python = WP_VENV / "bin" / "python"
    deps = _project_dependencies()
    stamp = WP_VENV / ".bench-stamp"
    wanted = json.dumps([WP_REQUIREMENT, *deps, _constraints()])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted and _wp_probe(python):
        return python, notes
    log(f"preparing {WP_VENV.name} with {WP_REQUIREMENT} (once; about 30 s)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(WP_VENV)], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(_constraints())
        constraints = f.name
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    base = [str(python), "-m", "pip", "install", "--quiet", WP_REQUIREMENT, *deps]
    try:
        result = subprocess.run(
            [*base, "-c", constraints], capture_output=True, text=True, env=env, timeout=900
        )
        if result.returncode != 0:
            tail = " ".join(result.stderr.strip().splitlines()[-3:])
            notes.append(
                f"{WP_REQUIREMENT} does not install with this project's versions ({tail}); "
                "installed the newest versions it supports instead"
            )
            result = subprocess.run(base, capture_output=True, text=True, env=env, timeout=900)
            if result.returncode != 0:
                tail = " ".join(result.stderr.strip().splitlines()[-3:])
                notes.append(f"{WP_REQUIREMENT} could not be installed: {tail}")
                return None, notes
    finally:
        os.unlink(constraints)
    if not _wp_probe(python):
        notes.append(f"{WP_REQUIREMENT} installed but cannot be imported")
        return None, notes
    stamp.write_text(wanted)
    return python, notes


# --- worker processes ------------------------------------------------------------------------
class WorkerError(RuntimeError):
    pass


class Worker:
    def __init__(self, name: str, python: Path | str, settings: str, args: list[str], env: dict):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by stop())
            "w+", prefix=f"bench-{name}-", suffix=".log"
        )
        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.worker", *args],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": settings},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise WorkerError(f"{self.name} exited ({self.proc.returncode}):\n{self.stderr()}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise WorkerError(f"{self.name} failed:\n{answer.get('error')}\n{self.stderr()}")
        return answer

    def ask(self, cmd: str, n: int = 1) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def stderr(self, lines: int = 30) -> str:
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_once(name: str, python, settings: str, role: str, env: dict) -> dict:
    worker = Worker(name, python, settings, [role], env)
    try:
        return worker.read()
    finally:
        worker.proc.wait(timeout=600)
        worker.log.close()


# --- statistics ----------------------------------------------------------------------------
def median(values):
    return statistics.median(values) if values else math.nan


def iqr(values) -> tuple[float, float]:
    if len(values) < 4:
        return (min(values, default=math.nan), max(values, default=math.nan))
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


# --- the benchmark -------------------------------------------------------------------------
@dataclass
class Plan:
    budget_s: float  # wall time for the measured rounds
    batch_s: float  # wall time of one scenario's batch in a round
    min_rounds: int
    max_rounds: int
    breakdown_n: int
    redis_n: int
    # Processes per scenario of the plugin and its baseline: a process's speed depends on how
    # its memory happens to be laid out (a few percent, steady for its life), so a scenario's
    # batch in a round is the mean of its processes' batches (their order varies by round).
    processes: int = 1


QUICK = Plan(
    budget_s=12,
    batch_s=0.1,
    min_rounds=5,
    max_rounds=40,
    breakdown_n=100,
    redis_n=300,
    processes=2,
)
FULL = Plan(
    budget_s=90,
    batch_s=0.15,
    min_rounds=20,
    max_rounds=300,
    breakdown_n=400,
    redis_n=2000,
    processes=3,
)


def run(options) -> dict:
    plan = QUICK if options.quick else FULL
    started = time.monotonic()
    load_before = os.getloadavg()
    services = start_services()
    workers: dict[str, Worker] = {}
    result: dict = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "database": services.database,
        "redis": services.redis_url or "embedded backend",
        "quick": options.quick,
    }
    try:
        env = {
            **os.environ,
            "BENCH_DATABASE_URL": services.database_url,
            "BENCH_REDIS_URL": services.redis_url,
            "BENCH_KEY_PREFIX": services.key_prefix,
            "PYTHONPATH": str(ROOT),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        log(f"{services.database}; Redis {result['redis']}")
        log("migrating and seeding the demo (about 20 s)")
        result["setup"] = run_once("setup", sys.executable, "bench.settings", "setup-plugin", env)
        scenarios = [
            ("baseline", sys.executable, "bench.settings_baseline", "baseline"),
            ("undecided", sys.executable, "bench.settings", "undecided"),
            ("refused", sys.executable, "bench.settings", "refused"),
            ("consented", sys.executable, "bench.settings", "consented"),
        ]
        if services.redis_url and shutil.which("redis-server"):
            from .scale import Store

            cluster = Store(masters=3).__enter__()
            services._drop.append(lambda: cluster.__exit__(None, None, None))
            env["BENCH_CLUSTER_URL"] = cluster.url
            result["cluster"] = f"Redis Cluster of 3 masters on ports {cluster.ports}"
            scenarios.append(
                ("consented-cluster", sys.executable, "bench.settings_cluster", "consented")
            )
        else:
            log("no redis-server (or no Redis): the consented-cluster scenario is skipped")
        wp_python, notes = (None, ["skipped (--no-wp)"]) if options.no_wp else ensure_wp_venv()
        result["wp_notes"] = notes
        if wp_python is not None:
            try:
                result["wp_setup"] = run_once(
                    "setup-wp", wp_python, "bench.settings_wp", "setup-wp", env
                )
                scenarios += [
                    ("wp-baseline", wp_python, "bench.settings_baseline", "baseline"),
                    ("wp", wp_python, "bench.settings_wp", "wp"),
                ]
            except WorkerError as exc:
                notes.append(f"wagtail-personalisation setup failed: {exc}")
        # Copies of each scenario of the plugin and of its baseline (not of wagtail-
        # personalisation's, whose page is 50 times slower than the difference measured):
        # "<name>#2"... run like the first, their batches averaged into the scenario's.
        copies: dict[str, list[str]] = {}
        for name, *_ in scenarios:
            n = 1 if name.startswith("wp") else plan.processes
            copies[name] = [name] + [f"{name}#{k}" for k in range(2, n + 1)]
        log(f"starting {sum(map(len, copies.values()))} scenario processes")
        for name, python, settings, scenario in scenarios:
            for copy in copies[name]:
                workers[copy] = Worker(copy, python, settings, ["serve", scenario], env)
        ready = {}
        for name in list(workers):
            if name not in workers:
                continue
            try:
                ready[name] = workers[name].read()
            except WorkerError as exc:
                if not name.startswith("wp"):
                    raise
                notes.append(f"wagtail-personalisation scenario failed: {exc}")
                for other in ("wp", "wp-baseline"):
                    copies.pop(other, None)
                    if other in workers:
                        workers.pop(other).stop()
                        ready.pop(other, None)
        result["ready"] = {name: ready[name] for name in copies}
        result["processes"] = {name: len(names) for name, names in copies.items()}
        result["counts"] = {
            name: workers[name].ask("count", 3 if name == "wp" else 50) for name in copies
        }

        # Batches of about plan.batch_s each, round-robin (a different scenario first in each
        # round) until the budget is spent, so slow drifts in machine load hit all alike.
        # Calibrated one scenario at a time (the warm-ups ran side by side).
        per_request_ms = {}
        for name, worker in workers.items():
            answer = worker.ask("run", 1 if ready[name]["warmup_ms"] > 100 else 10)
            per_request_ms[name] = answer["ns"] / answer["n"] / 1e6
        sizes = {
            name: max(1, min(2000, round(plan.batch_s * 1000 / max(ms, 0.05))))
            for name, ms in per_request_ms.items()
        }
        result["batch_sizes"] = sizes
        log(
            f"measuring for about {plan.budget_s:.0f} s, batches of "
            + ", ".join(f"{n} ({k})" for k, n in sizes.items())
        )
        each: dict[str, list[float]] = {name: [] for name in workers}
        each_cpu: dict[str, list[float]] = {name: [] for name in workers}
        errors = dict.fromkeys(workers, 0)
        names = list(workers)
        deadline = time.monotonic() + plan.budget_s
        r = 0
        while r < plan.min_rounds or (time.monotonic() < deadline and r < plan.max_rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                answer = workers[name].ask("run", sizes[name])
                each[name].append(answer["ns"] / answer["n"] / 1e6)
                each_cpu[name].append(answer["cpu_ns"] / answer["n"] / 1e6)
                errors[name] += answer["errors"]
            r += 1
        result["rounds"] = r
        # A scenario's batch in a round: the mean of its processes' batches.
        result["batches_ms"] = {n: _mean_by_round(each, c) for n, c in copies.items()}
        result["batches_cpu_ms"] = {n: _mean_by_round(each_cpu, c) for n, c in copies.items()}
        result["process_batches_ms"] = each
        result["errors"] = errors
        if any(errors.values()):
            raise WorkerError(f"non-200 responses during measurement: {errors}")

        log("20 running experiments on a page: the same page with and without them")
        result["experiments"] = workers["consented"].ask("experiments", sizes["consented"])
        log("breaking down the plugin's time")
        result["breakdown"] = workers["consented"].ask("breakdown", plan.breakdown_n)
        result["breakdown_undecided"] = workers["undecided"].ask("breakdown", plan.breakdown_n)
        if services.redis_url:
            result["redis_costs"] = workers["consented"].ask("redis", plan.redis_n)
        if options.profile:
            result["profile"] = workers["consented"].ask("profile", plan.breakdown_n)
    finally:
        for worker in workers.values():
            try:
                worker.stop()
            except Exception as exc:
                log(f"stopping {worker.name}: {exc}")
        services.close()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_after"] = os.getloadavg()
    result["figures"] = figures(result)
    return result


def _mean_by_round(batches: dict[str, list[float]], names: list[str]) -> list[float]:
    return [statistics.fmean(values) for values in zip(*(batches[n] for n in names), strict=True)]


def process_spread(result: dict) -> dict[str, float]:
    """For each scenario run in several processes: how far apart its processes' medians
    are (the slowest over the fastest, less one): the noise between processes of the same
    code that averaging them takes out of its figures."""
    each = result.get("process_batches_ms", {})
    out = {}
    for name, n in result.get("processes", {}).items():
        if n > 1:
            medians = [median(each[c]) for c in [name] + [f"{name}#{k}" for k in range(2, n + 1)]]
            out[name] = max(medians) / min(medians) - 1
    return out


def _paired(batches: dict, name: str, base: str) -> dict:
    a, b = batches[name], batches[base]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    q1, q3 = iqr(diffs)
    return {
        "ms": median(a),
        "base_ms": median(b),
        "added_ms": median(diffs),
        "added_iqr": (q1, q3),
        # 95% interval of the median difference, from the spread (normal approximation).
        "added_ci95": 1.96 * 1.2533 * (q3 - q1) / 1.349 / math.sqrt(len(diffs)),
        "ratio": median(ratios),
    }


def figures(result: dict) -> dict:
    """Medians of per-batch means; each scenario against its baseline by the median of the
    per-round differences and ratios (wall clock, and CPU time of the web process)."""
    out = {}
    for clock, batches in (("wall", result["batches_ms"]), ("cpu", result["batches_cpu_ms"])):
        f = out[clock] = {"baseline_ms": median(batches["baseline"])}
        for name in ("undecided", "refused", "consented", "consented-cluster"):
            if name in batches:
                f[name] = _paired(batches, name, "baseline")
        if "consented-cluster" in batches:
            f["cluster_vs_consented"] = _paired(batches, "consented-cluster", "consented")
        if "wp" in batches:
            f["wp"] = _paired(batches, "wp", "wp-baseline")
            f["wp_baseline_vs_baseline"] = _paired(batches, "wp-baseline", "baseline")
            plugin_added = f["consented"]["added_ms"]
            f["wp_vs_plugin"] = f["wp"]["added_ms"] / plugin_added if plugin_added > 0 else math.inf
    pieces = {p["label"].strip(): p for p in result["breakdown"]["pieces"]}
    trip = pieces.get("Redis EVALSHA call (client + round trip)", {"ms": 0.0, "cpu_ms": 0.0})
    out["round_trip_in_request_ms"] = trip["ms"]
    out["round_trip_cpu_ms"] = trip["cpu_ms"]
    # Python: the CPU time the plugin adds to the web process, less what a bare round trip
    # costs the process (the socket system calls, measured with a raw socket).
    # (the page view's own payload when measured, else a PING).
    costs = result.get("redis_costs", {})
    bare = costs.get("payload_round_trip_cpu_ms", costs.get("raw_ping_cpu_ms", 0.0))
    out["bare_round_trip_cpu_ms"] = bare
    out["python_ms"] = out["cpu"]["consented"]["added_ms"] - bare
    out["python_wall_estimate_ms"] = out["wall"]["consented"]["added_ms"] - trip["ms"]
    # The same in a tight loop of the two middleware around a bare view (warm caches).
    if "warm_added_cpu_ms" in costs:
        out["python_warm_ms"] = costs["warm_added_cpu_ms"] - bare
    # The request path's Python alone: the same loop with the round trip answered from memory.
    if "warm_answered_added_cpu_ms" in costs:
        out["python_answered_ms"] = costs["warm_answered_added_cpu_ms"]
    # 20 running experiments on the page, the same page without them (page CPU, paired by
    # round: a cross-check, noisy).
    if "experiments" in result:
        x = result["experiments"]
        out["experiments_added_ms"] = x["added_cpu_ms"]
        out["experiments_decide_ms"] = x["decide_cpu_ms"] - x["decide_cpu_ms_without"]
        out["experiments_round_trips"] = x["redis_round_trips"] - x["redis_round_trips_without"]
        out["experiments_evalsha"] = x["evalsha"]
        out["experiments_queries"] = x["db_queries"] - x["db_queries_without"]
        # Their own Python, measured in-process (the figure with the target).
        out["experiments_python_ms"] = x["replay"]["added_ms"]
    # Inside page views: the plugin's pieces as timed there, less the round trip they contain.
    out["python_pieces_ms"] = result["breakdown"]["plugin_cpu_ms"] - trip["cpu_ms"]
    return out


def rows(result: dict) -> list[tuple[str, str, str, str, str, str]]:
    from .report import rows as request_rows

    return request_rows(result)


def details(result: dict) -> str:
    from .report import details as request_details

    return request_details(result)
