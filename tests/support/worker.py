"""A real Celery worker process, against the same PostgreSQL test database and Redis."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    db_name: str,
    *,
    name: str,
    log_path: Path,
    extra_env: dict | None = None,
    pool: tuple[str, ...] = ("--pool=solo", "--concurrency=1"),
) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(extra_env or {})
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        TAILORED_WORKER_DB_NAME=db_name,
        TAILORED_TEST_RUN=settings.TEST_RUN_ID,
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "demo",
            "worker",
            *pool,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Celery worker exited early:\n{log_path.read_text()[-4000:]}")
        if "ready." in log_path.read_text():
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()[-4000:]}")


def stop_worker(proc: subprocess.Popen, *, hard: bool = False) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """Start a worker for the test and publish tasks to it instead of running them inline."""
    from demo.celery import app

    log_path = tmp_path / "worker.log"
    proc = start_worker(connection.settings_dict["NAME"], name="e2e", log_path=log_path)
    proc.log_path = log_path
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = True
        stop_worker(proc)
        # Anything left queued for this run's queue is discarded.
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
