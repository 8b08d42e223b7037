"""gunicorn's multiprocess mode (docs/operations.md): with PROMETHEUS_MULTIPROC_DIR set before
the processes start, the endpoint of one process reports the counts of all of them."""

import os
import subprocess
import sys

import pytest

from tests.support.first_party import ROOT

pytestmark = pytest.mark.services

COUNT = """
import django; django.setup()
from segments import metrics
metrics.EVENTS_ACCEPTED.inc(3)
metrics.ROUND_TRIP.observe(0.001)
"""
SCRAPE = """
import django; django.setup()
from tailored.metrics import exposition
print(exposition()[0].decode())
"""


def _run(code: str, directory) -> str:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_endpoint_aggregates_every_process(tmp_path):
    _run(COUNT, tmp_path)
    _run(COUNT, tmp_path)  # a second process (a second gunicorn worker)
    text = _run(SCRAPE, tmp_path)
    assert "tailored_events_accepted_total 6.0" in text
    assert "tailored_fast_store_round_trip_seconds_count 2.0" in text
    assert "tailored_fast_store_up 1.0" in text  # scrape-time gauges are there too
