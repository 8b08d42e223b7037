"""Liveness, readiness and the metrics endpoint, against the real PostgreSQL and Redis (and a
Redis that is not there: the backend pointed at a closed port)."""

import json
import logging
import sys

import pytest
from django.core import checks
from django.db import connection

from segments.tasks import sweep
from tailored import health
from tailored.logs import JsonFormatter
from tests.builders import browser

pytestmark = [pytest.mark.services, pytest.mark.django_db]

LIVE, READY, METRICS = "/-/health/live/", "/-/health/ready/", "/-/metrics/"
TOKEN = "metrics-token-0123456789abcdef0123456789"


@pytest.fixture
def redis_down(settings):
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "tailored-test-down"},
    }


def test_ready_with_the_real_services_reports_each_check_with_its_latency(backend):
    response = browser().get(READY)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok"
    for name in ("database", "migrations", "fast_store"):
        assert body["checks"][name]["ok"] is True, name
        assert body["checks"][name]["critical"] is True
        assert body["checks"][name]["ms"] >= 0
    assert body["checks"]["worker_heartbeat"]["critical"] is False
    assert len(response.content) < 1000


def test_redis_unreachable_makes_readiness_503_and_liveness_stays_200(redis_down):
    response = browser().get(READY)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["fast_store"] == {
        "ok": False,
        "critical": True,
        "ms": body["checks"]["fast_store"]["ms"],
        "error": "unreachable",
    }
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker_heartbeat"]["ok"] is False
    assert body["checks"]["worker_heartbeat"]["error"] == "ConnectionError"  # the type only
    live = browser().get(LIVE)
    assert live.status_code == 200 and live.json() == {"status": "ok"}


def test_an_unapplied_migration_makes_readiness_503(monkeypatch):
    monkeypatch.setattr(health, "_migrated", set())
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute("DELETE FROM django_migrations WHERE app = 'segments'")
    body = browser().get(READY).json()
    assert body["status"] == "unavailable"
    assert body["checks"]["migrations"]["ok"] is False
    assert body["checks"]["migrations"]["error"].endswith("unapplied")


def test_a_missing_consumer_group_is_recreated_and_reported(backend):
    backend.ensure_consumer_groups()
    stream = f"{backend.prefix}:e:2"
    backend.client.xadd(stream, {"k": "x", "d": "{}"})
    backend.client.xgroup_destroy(stream, "segments")
    body = browser().get(READY).json()
    assert body["status"] == "ok"
    assert body["checks"]["fast_store"]["groups_created"] == [2]
    groups = backend.client.xinfo_groups(stream)
    assert [g["name"] for g in groups] == ["segments"]
    assert groups[0]["last-delivered-id"] == "0-0"  # nothing in the stream is skipped
    assert "groups_created" not in browser().get(READY).json()["checks"]["fast_store"]


def test_the_sweep_is_the_workers_heartbeat(backend, settings):
    before = browser().get(READY).json()
    assert before["checks"]["worker_heartbeat"] == {
        "ok": False,
        "critical": False,
        "ms": before["checks"]["worker_heartbeat"]["ms"],
        "age_s": None,
    }
    assert before["status"] == "ok"  # reported, not failing readiness
    sweep()
    heartbeat = browser().get(READY).json()["checks"]["worker_heartbeat"]
    assert heartbeat["ok"] is True and 0 <= heartbeat["age_s"] < 5
    settings.SEGMENTS_HEARTBEAT_MAX_AGE = -1
    assert browser().get(READY).json()["checks"]["worker_heartbeat"]["ok"] is False


def test_the_endpoints_record_nothing_for_a_consenting_visitor(backend):
    from tests.builders import consenting_browser

    client = consenting_browser()
    for url in (LIVE, READY):
        assert client.get(url).status_code == 200
    assert all(row.length == 0 for row in backend.stream_stats(0))


# -- metrics endpoint ----------------------------------------------------------------------------


def test_metrics_are_off_by_default():
    assert browser().get(METRICS).status_code == 404
    assert browser().get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_metrics_with_a_token(settings, backend):
    settings.TAILORED_METRICS_TOKEN = TOKEN
    assert browser().get(METRICS).status_code == 404
    assert browser().get(METRICS, HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    response = browser().get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "tailored_fast_store_up 1.0" in text
    assert 'tailored_stream_lag_seconds{partition="0"}' in text


def test_metrics_from_an_allowed_address(settings, backend):
    settings.TAILORED_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert browser().get(METRICS).status_code == 404  # the test client is 127.0.0.1
    assert browser().get(METRICS, REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.TAILORED_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert browser().get(METRICS).status_code == 200


def test_metrics_with_redis_down_still_answer(settings, redis_down):
    settings.TAILORED_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    response = browser().get(METRICS)
    assert response.status_code == 200
    assert "tailored_fast_store_up 0.0" in response.content.decode()


def test_metrics_settings_checks(settings):
    from tailored.checks import check_metrics_access

    assert check_metrics_access() == []
    settings.TAILORED_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "not-a-network"]
    settings.TAILORED_METRICS_TOKEN = "short"
    messages = check_metrics_access()
    assert [m.id for m in messages] == ["tailored.E001", "tailored.W001"]
    assert "not-a-network" in messages[0].hint
    assert [m for m in checks.run_checks() if m.id.startswith("tailored.")] != []


# -- the JSON log formatter ------------------------------------------------------------------


def test_the_json_formatter_keeps_event_fields_and_leaves_exception_messages_out():
    try:
        raise ValueError("secret-value-in-a-message")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "segments.operations", logging.ERROR, __file__, 1, "x %d", (3,), exc_info
    )
    record.event, record.partition = "drain.dead_letter", 3
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "drain.dead_letter" and line["partition"] == 3
    assert line["message"] == "x 3" and line["level"] == "ERROR"
    assert line["exc_type"] == "ValueError" and line["stack"]
    assert "secret-value-in-a-message" not in json.dumps(line)
    assert "secret-value-in-a-message" in JsonFormatter(messages=True).format(record)
