"""The metrics move when events flow: real Redis, the real drain, read from Prometheus'
registry and from a scrape of /-/metrics/."""

import json
import time

import pytest
from prometheus_client import REGISTRY

from consent.api import notice_version
from segments import events
from segments.api import exchange, mirror_consent, stream_stats
from segments.stream import drain as pipeline
from tests.builders import browser, segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

KEY = "0123456789abcdef0123456789abcdef"
STRANGER = "fedcba9876543210fedcba9876543210"


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """Samples now; ``delta(name, **labels)`` later."""

    NAMES = [
        ("tailored_events_accepted_total", {}),
        ("tailored_events_refused_total", {"reason": "no_consent"}),
        ("tailored_events_refused_total", {"reason": "unavailable"}),
        ("tailored_fast_store_round_trip_seconds_count", {}),
        ("tailored_fast_store_errors_total", {}),
        ("tailored_fast_store_breaker_opened_total", {}),
        ("tailored_drain_batch_seconds_count", {}),
        ("tailored_drain_batch_size_sum", {}),
        ("tailored_drain_events_total", {}),
        ("tailored_membership_changes_total", {"segment": "engaged", "change": "entered"}),
    ]

    def __init__(self):
        self.before = {
            (n, tuple(sorted(labels.items()))): value(n, **labels) for n, labels in self.NAMES
        }

    def delta(self, name: str, **labels) -> float:
        return value(name, **labels) - self.before[(name, tuple(sorted(labels.items())))]


def view(key=KEY):
    return exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))


def scrape(settings) -> dict[str, float]:
    settings.TAILORED_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    text = browser().get("/-/metrics/").content.decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            samples[name] = float(number)
    return samples


def test_events_flowing_through_the_request_path_and_the_drain(backend, settings):
    segment()  # engaged: 3 page views in 10 minutes
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    counts = Counts()
    for _ in range(3):
        assert view().consented
    view(STRANGER)  # no consent state: rebuilt as "nothing recorded", refused
    assert counts.delta("tailored_events_accepted_total") == 3
    assert counts.delta("tailored_events_refused_total", reason="no_consent") == 1
    assert counts.delta("tailored_fast_store_round_trip_seconds_count") == 4

    # Waiting in the stream: the scrape reads it from Redis.
    time.sleep(0.01)
    [row] = [r for r in stream_stats() if r.partition == partition]
    assert row.length == 3 and row.lag == 3 and row.pending == 0
    assert row.dead_letters == 0 and row.oldest_age > 0
    samples = scrape(settings)
    label = f'{{partition="{partition}"}}'
    assert samples[f"tailored_stream_undelivered{label}"] == 3
    assert samples[f"tailored_stream_lag_seconds{label}"] > 0

    assert pipeline.drain_partition(partition).processed == 3
    assert counts.delta("tailored_drain_batch_seconds_count") >= 1
    assert counts.delta("tailored_drain_batch_size_sum") == 3
    assert counts.delta("tailored_drain_events_total") == 3
    assert (
        counts.delta("tailored_membership_changes_total", segment="engaged", change="entered") == 1
    )
    samples = scrape(settings)
    assert samples[f"tailored_stream_undelivered{label}"] == 0
    assert samples[f"tailored_stream_pending{label}"] == 0
    assert samples[f"tailored_stream_lag_seconds{label}"] == 0


def test_pending_entries_of_a_drain_that_died_are_seen(backend):
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    view()
    view()
    backend.read_batch(partition, "a-worker-that-dies", 10)  # delivered, never acknowledged
    [row] = [r for r in stream_stats() if r.partition == partition]
    assert row.pending == 2 and row.lag == 0 and row.oldest_age >= 0
    assert row.group is True


def test_an_unreachable_store_counts_errors_and_refusals(settings):
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0"},
    }
    counts = Counts()
    view()  # fails: breaker opens
    view()  # skipped while it is open
    assert counts.delta("tailored_fast_store_errors_total") == 1
    assert counts.delta("tailored_fast_store_breaker_opened_total") == 1
    assert counts.delta("tailored_events_refused_total", reason="unavailable") == 2
    assert counts.delta("tailored_events_accepted_total") == 0
    assert scrape(settings)["tailored_fast_store_up"] == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_dead_letters_and_a_dead_drains_pending_entries_are_in_the_scrape(backend, settings):
    """What an operator alerts on (docs/operations.md): entries set aside as unprocessable and
    entries a dead drain holds, read from /-/metrics/ as Prometheus reads them."""
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    label = f'{{partition="{partition}"}}'
    before = value("tailored_dead_letters_total", reason="DataError")
    # Straight into the stream, past intake validation: PostgreSQL refuses "\u0000" in JSON.
    event = events.Event(visitor_key=KEY, name="page_view", ts=time.time())
    body = {"n": "page_view", "t": round(event.ts, 3), "i": event.event_id, "p": {"x": "a\0b"}}
    poison = {"k": KEY, "d": json.dumps(body)}
    backend.append_events(
        partition, [poison, events.encode(events.Event(KEY, "page_view", time.time()))]
    )
    assert scrape(settings)[f"tailored_stream_dead_letter{label}"] == 0

    assert pipeline.drain_partition(partition).processed == 1
    assert value("tailored_dead_letters_total", reason="DataError") - before == 1
    samples = scrape(settings)
    assert samples[f"tailored_stream_dead_letter{label}"] == 1
    assert samples[f"tailored_stream_pending{label}"] == 0

    view()
    view()
    backend.read_batch(partition, "a-worker-that-dies", 10)  # delivered, never acknowledged
    samples = scrape(settings)
    assert samples[f"tailored_stream_pending{label}"] == 2
    assert samples[f"tailored_stream_undelivered{label}"] == 0
