"""Batch steps (segments.extensions.register_batch_step): what the drain hands them, what it
writes for them, and that a step never sees an event twice or stalls the stream."""

import time

import pytest

from consent.api import notice_version, visitor_key
from segments import events
from segments.api import (
    FieldChanges,
    exchange,
    mirror_consent,
    register_batch_step,
    unregister_batch_step,
)
from segments.stream import drain as pipeline

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def seen():
    calls = []

    def step(visitors, now):
        calls.append([(v.key, [(e.name, e.properties) for e in v.events]) for v in visitors])
        return {
            v.key: FieldChanges(set={"x:1": "1:0", "s:forged": "x", "_c:x": "1"}) for v in visitors
        }

    register_batch_step("test", step)
    yield calls
    unregister_batch_step("test")


def _visit(key, name="page_view", **properties):
    return exchange(
        key, events.Event(visitor_key=key, name=name, ts=time.time(), properties=properties)
    )


def test_a_step_sees_new_events_once_and_its_fields_are_committed(backend, seen):
    key = visitor_key("batch-step-1")
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    _visit(key, page=3)
    _visit(key, "click", block="b")
    p = backend.partition_for(key)
    entries = backend.read_batch(p, "c", 10)
    assert pipeline.process_batch(backend, p, entries, []) == 2
    assert seen == [[(key, [("page_view", {"page": 3}), ("click", {"block": "b"})])]]
    fields = backend.visitor_data(key).fields
    assert fields["x:1"] == "1:0"
    assert "s:forged" not in fields and "_c:x" not in fields  # the drain's own fields are kept
    # The same entries delivered again: already in the log, so the step sees no event.
    seen.clear()
    pipeline.process_batch(backend, p, entries, [])
    assert seen == [[(key, [])]]


def test_a_step_that_raises_is_skipped_and_the_batch_goes_on(backend):
    def broken(visitors, now):
        raise RuntimeError("boom")

    register_batch_step("broken", broken)
    try:
        key = visitor_key("batch-step-2")
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
        _visit(key)
        p = backend.partition_for(key)
        assert pipeline.process_batch(backend, p, backend.read_batch(p, "c", 10), []) == 1
        assert backend.pending_partitions() == []
    finally:
        unregister_batch_step("broken")


def test_an_unconsented_visitors_events_never_reach_a_step(backend, seen):
    key = visitor_key("batch-step-3")
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    _visit(key)
    mirror_consent(key, frozenset(), notice_version(), time.time() + 3600)  # withdrew
    p = backend.partition_for(key)
    pipeline.process_batch(backend, p, backend.read_batch(p, "c", 10), [])
    assert seen == []
