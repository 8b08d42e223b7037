"""Model benchmarks: clustering 1M visitor profiles, training the propensity model on 200k
rows, batch scoring throughput, and the per-event cost model scoring adds to the pipeline
(ratio to the same pipeline without models, measured side by side in one process).

Runs ``bench.ml_tasks`` in a subprocess with the bench settings against a fresh PostgreSQL
database (the durable log of the pipeline figure) and the embedded fast store, OMP_NUM_THREADS=1
like the workers.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .report import verdict

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")

TARGET_CLUSTER_SECONDS = 30
TARGET_SCORE_SECONDS = 60
TARGET_OVERHEAD = 1.20
TARGET_BYTES = 1024


def log(message: str) -> None:
    print(f"  [ml] {message}", file=sys.stderr, flush=True)


def run(options) -> dict:
    import psycopg

    quick = getattr(options, "quick", False)
    db = f"tailored_bench_ml_{os.getpid()}"
    admin = POSTGRES_URL.rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
        conn.execute(f'CREATE DATABASE "{db}"')
    env = dict(os.environ)
    media = tempfile.mkdtemp(prefix="tailored-bench-ml-")
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_DATABASE_URL=POSTGRES_URL.rstrip("/") + "/" + db,
        BENCH_REDIS_URL="",
        OMP_NUM_THREADS="1",
        MEDIA_ROOT=media,
        PYTHONPATH=str(ROOT),
    )
    try:
        log("migrating a fresh PostgreSQL database")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        log("clustering, training, scoring and the pipeline with and without models")
        out = subprocess.run(
            [sys.executable, "-m", "bench.ml_tasks", *(["--quick"] if quick else [])],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}"')


def rows(result: dict) -> list[tuple]:
    c, p, s, pipe = result["cluster"], result["propensity"], result["scoring"], result["pipeline"]
    per_million = s["seconds"] / s["visitors"] * 1_000_000
    cluster_million = c["seconds"] * 1_000_000 / c["rows"]
    return [
        (
            f"Clustering {c['rows']:,} profiles, k 3-8 by silhouette (s)",
            f"{c['seconds']:.1f}",
            "",
            "",
            f"<= {TARGET_CLUSTER_SECONDS} per 1M",
            verdict(cluster_million <= TARGET_CLUSTER_SECONDS),
        ),
        (
            f"Propensity (HGB, calibrated) on {p['rows']:,} rows (s)",
            f"{p['seconds']:.1f}",
            f"{p['baseline_seconds']:.1f} (logistic)",
            f"{p['seconds'] / p['baseline_seconds']:.1f}x",
            "",
            "",
        ),
        (
            "Batch scoring, features + propensity + cluster (s per 1M)",
            f"{per_million:.1f}",
            "",
            "",
            f"<= {TARGET_SCORE_SECONDS}",
            verdict(per_million <= TARGET_SCORE_SECONDS),
        ),
        (
            "Pipeline per-event cost with 2 active models (µs)",
            f"{pipe['on_us']:.1f}",
            f"{pipe['off_us']:.1f} (no model)",
            f"{pipe['ratio']:.2f}x",
            f"<= {TARGET_OVERHEAD:.2f}x",
            verdict(pipe["ratio"] <= TARGET_OVERHEAD),
        ),
        (
            "Stored profile with model outputs (bytes, compressed)",
            str(pipe["profile_bytes"]),
            f"{pipe['profile_bytes_without_scores']} (without)",
            "",
            f"<= {TARGET_BYTES}",
            verdict(pipe["profile_bytes"] <= TARGET_BYTES),
        ),
    ]


def details(result: dict) -> str:
    c, s, pipe = result["cluster"], result["scoring"], result["pipeline"]
    v = s["visitors"]
    return (
        f"Clustering: synthetic recency/frequency/monetary of {c['rows']:,} visitors (log, "
        f"standardised): per k, MiniBatchKMeans on a 100,000-row sample, a few full Lloyd "
        f"iterations, every visitor to the nearest centre; silhouette on 5,000 rows; "
        f"chose k={c['k']} (silhouette {c['silhouette']:.3f}). Scoring: {v:,} "
        f"profile scorings; features {s['features'] / v * 1e6:.1f} µs, propensity "
        f"{s['propensity'] / v * 1e6:.1f} µs, cluster {s['cluster'] / v * 1e6:.2f} µs per "
        f"visitor. Pipeline: process_batch of 2,000 events over 500 visitors, embedded fast "
        f"store (no network: the conservative ratio), durable log in PostgreSQL, 3 segments "
        f"(one rule, one model score, one cluster); {pipe['pairs']} pairs of adjacent batches "
        f"without and with the models over two like populations of 500 visitors (alternating "
        f"which goes first, garbage collected before each): the ratio is the median over "
        f"consecutive two pairs of the geometric mean of their ratios, the µs are medians."
    )
