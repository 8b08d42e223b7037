"""Builders for the experiments engine's tests: running experiments, consented visitors, and
page views and events through the real stream and drain."""

import time

from consent.api import notice_version, visitor_key
from experiments import runtime
from experiments.models import Arm, Experiment, Goal
from segments import events
from segments.api import exchange, get_backend, mirror_consent
from segments.stream import drain as pipeline
from segments.stream.drain import enabled_segments


def experiment(
    key: str = "exp",
    *,
    kind: str = Experiment.Kind.BLOCK,
    page=None,
    block_id: str = "",
    arms=(("default", 1.0), ("v1", 1.0)),
    goals=(("purchase", Goal.Metric.CONVERSION, {}),),
    **fields,
) -> Experiment:
    """A running experiment with these arms ((shows, weight), first the control) and goals
    ((event, metric, match); the first is primary)."""
    fields.setdefault("status", Experiment.Status.RUNNING)
    e = Experiment.objects.create(
        name=key, key=key, kind=kind, page=page, block_id=block_id, **fields
    )
    for n, (shows, weight) in enumerate(arms):
        Arm.objects.create(experiment=e, index=n, name=shows, key=shows, weight=weight)
    for n, (event, metric, match) in enumerate(goals):
        Goal.objects.create(
            experiment=e,
            name=f"{event}-{metric}",
            event=event,
            metric=metric,
            match=match,
            role=Goal.Role.PRIMARY if n == 0 else Goal.Role.SECONDARY,
            order=n,
        )
    runtime.forget()
    return e


def consented(name: str) -> str:
    key = visitor_key(name)
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    return key


def send(key: str, name: str = "page_view", ts: float | None = None, **properties):
    """Record an event through the request path's exchange (one round trip)."""
    event = events.Event(
        visitor_key=key, name=name, ts=time.time() if ts is None else ts, properties=properties
    )
    return exchange(key, event)


def drain(key: str) -> list:
    """Drain the visitor's partition once; returns the entries read (to deliver again)."""
    backend = get_backend()
    p = backend.partition_for(key)
    entries = backend.read_batch(p, "test", 1000, reclaim=True)
    pipeline.process_batch(backend, p, entries, enabled_segments())
    return entries


def redeliver(key: str, entries: list) -> None:
    backend = get_backend()
    pipeline.process_batch(backend, backend.partition_for(key), entries, enabled_segments())
