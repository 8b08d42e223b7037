"""Model-driven segments end to end: a real Celery worker trains a model from the events in
PostgreSQL, an editor activates it, and a visitor enters a model-driven segment through the
real pipeline (the worker drains the Redis stream and scores them)."""

import time

import pytest

from consent.api import notice_version
from segments import events
from segments.api import exchange, mirror_consent, schedule_drain
from segments.models import MembershipChange, Segment
from segments_ml import tasks
from segments_ml import versions as registry
from segments_ml.models import MLModel, ModelVersion
from tests.segments_ml.builders import DAY, customers, store
from tests.support.worker import wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_a_worker_trained_model_puts_a_visitor_in_a_model_segment(celery_worker, backend):
    store(customers(60, 90, time.time() - 3600, seed=11))
    model = MLModel.objects.create(
        name="Buys again",
        slug="buys-again",
        kind="propensity",
        target={"event": "purchase", "horizon_days": 30},
        population_event="purchase",
    )
    version = tasks.queue_training(model, user="editor")  # sent to the worker on commit

    def finished():
        v = ModelVersion.objects.get(pk=version.pk)
        return v if v.status in ("ready", "failed") else None

    version = wait_for(finished, timeout=180, interval=0.5)
    assert version is not None, celery_worker.log_path.read_text()[-3000:]
    assert version.status == "ready", version.error
    assert "segments.ml.train" in celery_worker.log_path.read_text()
    assert version.metrics["roc_auc"] > 0.75
    registry.activate(version, user="editor")
    Segment.objects.create(
        name="Likely to buy again",
        slug="likely",
        rule={"type": "model", "model": "buys-again", "top_percent": 50},
    )

    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    for i, days in enumerate((50, 35, 21, 12, 4)):  # a regular customer
        result = exchange(
            KEY,
            events.Event(
                visitor_key=KEY,
                name="purchase",
                ts=now - days * DAY,
                properties={"value": 55.0, "order_id": f"o{i}"},
            ),
        )
        if result.drain_needed:
            schedule_drain(KEY)

    def member():
        return "likely" in exchange(KEY).segments_at(time.time())

    assert wait_for(member, timeout=60), celery_worker.log_path.read_text()[-3000:]
    change = MembershipChange.objects.get(visitor_key=KEY, segment="likely")
    assert change.entered and "buys again score" in change.reason
    assert "segments.drain" in celery_worker.log_path.read_text()


def _mapped_files(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_a_prefork_worker_loads_the_model_code_once_before_forking(transactional_db, tmp_path):
    """The pool processes start with scikit-learn already mapped from the parent (no 2 s import
    on their first batch with a model), before any task has run."""
    from django.db import connection

    from tests.support.worker import start_worker, stop_worker

    log_path = tmp_path / "worker.log"
    proc = start_worker(
        connection.settings_dict["NAME"],
        name="preload",
        log_path=log_path,
        pool=("--pool=prefork", "--concurrency=2"),
    )
    try:

        def children() -> list[int]:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]

        pool = wait_for(lambda: len(children()) >= 2 and children(), timeout=30)
        assert pool, log_path.read_text()[-3000:]
        native = "sklearn/ensemble/_hist_gradient_boosting"
        assert native in _mapped_files(proc.pid)
        for child in pool:
            assert native in _mapped_files(child), f"pool process {child} did not inherit it"
        assert "Could not preload" not in log_path.read_text()
    finally:
        stop_worker(proc)


def test_preloading_can_be_turned_off(tmp_path):
    import subprocess
    import sys

    script = (
        "import django, gc; django.setup();"
        "from django.test import override_settings;"
        "from segments_ml.preload import preload_for_workers as p;"
        "off = override_settings(SEGMENTS_ML_PRELOAD=False);"
        "off.enable(); a = p(); off.disable();"
        "import sys; b = 'sklearn.ensemble' in sys.modules;"
        "c = p(); print(a, b, c, 'sklearn.ensemble' in sys.modules, gc.get_freeze_count() > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert out.stdout.split() == ["False", "False", "True", "True", "True"], out.stderr[-2000:]
