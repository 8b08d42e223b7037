"""Work done inside benchmark subprocesses (Django configured with bench.settings_pipeline).

``python -m bench.pipeline_tasks ROLE [ARGS]`` prints one JSON line with its measurements.
"""

import json
import math
import os
import random
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_pipeline")
django.setup()

from celery import shared_task  # noqa: E402
from django.db import connection  # noqa: E402

from consent.api import notice_version, visitor_key  # noqa: E402
from segments import events  # noqa: E402
from segments.backends import get_backend  # noqa: E402
from segments.backends.base import CONSENT_PREFIX, NOTICE_FIELD, StreamEntry  # noqa: E402
from segments.definitions import enabled_segments  # noqa: E402
from segments.models import LoggedEvent, Segment  # noqa: E402
from segments.profiles.features import Profile  # noqa: E402
from segments.stream import drain as pipeline  # noqa: E402

EVENT_NAMES = ["page_view", "click", "add_to_cart", "purchase", "scroll", "signup"]
WARM_UP_SECONDS = 3


def visitor_keys(namespace: str, count: int) -> list[str]:
    """``count`` visitor keys made as production makes them (keyed hashes of an identifier,
    through the consent app), so they spread over the partitions as real visitors do.
    (Keys such as ``f"{n:032x}"`` for small ``n`` all share their first 8 hex digits, which
    choose the partition: one partition would serve the whole benchmark.)"""
    return [visitor_key(f"bench-{namespace}-{n}") for n in range(count)]


def segment_rules(n: int = 50) -> list[tuple[str, dict]]:
    """``n`` behavioural segments of the kinds editors write (counts in windows, sequences,
    features), the same set the request-cost benchmark uses in spirit."""
    rules = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            rule = {
                "type": "event_count",
                "event": EVENT_NAMES[i % 6],
                "min": 1 + i % 4,
                "window": f"{5 + i}m",
            }
        elif kind == 1:
            rule = {"type": "event_count", "event": "purchase", "min": 1, "window": f"{1 + i}d"}
        elif kind == 2:
            rule = {"type": "feature", "feature": "monetary_value", "op": "gte", "value": 10 * i}
        elif kind == 3:
            rule = {
                "type": "event_without",
                "event": "add_to_cart",
                "without": "purchase",
                "window": "1d",
                "min_age": "30m",
            }
        else:
            rule = {
                "type": "all",
                "conditions": [
                    {"type": "feature", "feature": "days_since_last_seen", "op": "lt", "value": 30},
                    {
                        "type": "feature",
                        "feature": "purchase_count",
                        "op": "gte",
                        "value": 1 + i % 3,
                    },
                ],
            }
        rules.append((f"bench-{i:02d}", rule))
    return rules


def setup() -> dict:
    for slug, rule in segment_rules():
        Segment.objects.update_or_create(slug=slug, defaults={"name": slug, "rule": rule})
    Segment.objects.update_or_create(
        slug="probe",
        defaults={
            "name": "probe",
            "rule": {"type": "event_count", "event": "probe", "min": 1, "window": "1h"},
        },
    )
    return {"segments": Segment.objects.count()}


def items(count: int) -> dict:
    """Product pages (items) for the ``count`` stock codes most customers bought, so the
    replay's purchases name items (once: a second call finds them)."""
    from wagtail.models import Page, Site

    from demo.home.management.commands.seed_demo import retail_products
    from demo.home.models import HomePage, ProductPage
    from recommendations.api import sync_items

    from .pipeline import DATA

    if ProductPage.objects.exclude(stock_code="").exists():
        return {"items": ProductPage.objects.exclude(stock_code="").count()}
    home = HomePage.objects.first()
    if home is None:
        home = Page.get_first_root_node().add_child(instance=HomePage(title="Bench", slug="b"))
        Site.objects.update_or_create(
            is_default_site=True, defaults={"root_page": home, "hostname": "localhost"}
        )
    for n, (code, description, price) in enumerate(retail_products(DATA, count)):
        home.add_child(
            instance=ProductPage(
                title=description.capitalize()[:255] or code,
                slug=f"product-{n}",  # stock codes may differ by case only
                price=price or "1.00",
                stock_code=code,
            )
        )
    return {"items": sync_items()}


def _grant(keys: list[str]) -> None:
    """Consent state for synthetic visitors, written in bulk (as the consent app would)."""
    backend = get_backend()
    version, expiry = notice_version(), repr(time.time() + 86400)
    pipe = backend.client.pipeline(transaction=False)
    for n, key in enumerate(keys, start=1):
        pipe.hset(
            backend._m(key),
            mapping={NOTICE_FIELD: version, CONSENT_PREFIX + "personalization": expiry},
        )
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()


def process(expected: int, timeout: float = 600) -> dict:
    """Kick the workers (as Celery beat's sweep does) and wait until every event is logged."""
    from segments.tasks import sweep

    started = time.perf_counter()
    backend = get_backend()
    while time.perf_counter() - started < timeout:
        sweep.delay()
        count = LoggedEvent.objects.count()
        if count >= expected and not backend.pending_partitions():
            return {"events": count, "seconds": time.perf_counter() - started}
        time.sleep(0.25)
    return {"events": LoggedEvent.objects.count(), "seconds": None}


@shared_task(name="bench.one_event", ignore_result=True)
def one_event(fields: dict, n: int) -> None:
    """The baseline design: one Celery task per event, doing the same work for one event."""
    backend = get_backend()
    entry = StreamEntry(f"1-{n}", fields)
    pipeline.process_batch(backend, 0, [entry], enabled_segments())
    backend.client.incr(f"{backend.prefix}:bench:done")


def baseline_publish(count: int) -> dict:
    keys = visitor_keys("baseline", count)
    _grant(keys)
    now = time.time()
    started = time.perf_counter()
    for n, key in enumerate(keys, start=1):
        event = events.Event(visitor_key=key, name="page_view", ts=now)
        one_event.delay(events.encode(event), n)
    return {"published": count, "publish_seconds": time.perf_counter() - started}


def baseline_wait(count: int, timeout: float = 300) -> dict:
    backend = get_backend()
    key = f"{backend.prefix}:bench:done"
    started = None
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        done = int(backend.client.get(key) or 0)
        if done and started is None:
            started = (time.perf_counter(), done)
        if done >= count:
            t0, d0 = started
            elapsed = time.perf_counter() - t0
            return {
                "events": done - d0,
                "seconds": elapsed,
                "per_second": (done - d0) / elapsed if elapsed else None,
            }
        time.sleep(0.05)
    return {"events": int(backend.client.get(key) or 0), "seconds": None, "per_second": None}


def freshness(rate: float, seconds: float, probes: int) -> dict:
    """A steady load of ``rate`` events/s from background visitors; meanwhile ``probes``
    fresh visitors each send one event that puts them in segment "probe". Latency: from the
    event being recorded to the membership being visible to the next request's read."""
    from segments.api import exchange, record_events

    background = visitor_keys("background", 2000)
    probe_keys = visitor_keys("probe", probes)
    _grant(background + probe_keys)
    latencies: list[float] = []
    lock = threading.Lock()

    def watch(key: str, sent: float) -> None:
        while time.perf_counter() - sent < 10:
            if "probe" in exchange(key).memberships:
                with lock:
                    latencies.append(time.perf_counter() - sent)
                return
            time.sleep(0.002)

    # Warm-up, not measured: the same load for a few seconds first, so the worker processes
    # have loaded their code, connections and segment definitions (a steady state).
    warm_start = time.perf_counter()
    for n in range(int(rate * WARM_UP_SECONDS)):
        delay = warm_start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        record_events(random.choice(background), [(random.choice(EVENT_NAMES), {}, None)])

    watchers = []
    total = int(rate * seconds)
    probe_every = max(total // probes, 1)
    started = time.perf_counter()
    sent = 0
    for n in range(total):
        target = started + n / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if n % probe_every == 0 and len(watchers) < probes:
            key = probe_keys[len(watchers)]
            t = time.perf_counter()
            record_events(key, [("probe", {}, None)])
            thread = threading.Thread(target=watch, args=(key, t), daemon=True)
            thread.start()
            watchers.append(thread)
        else:
            record_events(random.choice(background), [(random.choice(EVENT_NAMES), {}, None)])
        sent += 1
    achieved = sent / (time.perf_counter() - started)
    for thread in watchers:
        thread.join(timeout=15)
    seen = len(latencies)
    # A probe never seen (within 10 s) counts as infinitely late, not as absent.
    latencies = sorted(latencies) + [math.inf] * (len(watchers) - seen)

    def pct(p: float):
        if not latencies:
            return None
        value = latencies[min(int(p * len(latencies)), len(latencies) - 1)]
        return None if value == math.inf else value * 1000

    partitions = get_backend().partitions
    return {
        "rate": achieved,
        "probes": len(watchers),
        "seen": seen,
        "partitions_probed": len({get_backend().partition_for(k) for k in probe_keys}),
        "partitions": partitions,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    }


def memory(visitors: int, sample_events: int) -> dict:
    """``visitors`` profiles as the workers leave them (a few events each), then the cost of
    processing ``sample_events`` new events for random existing visitors."""
    backend = get_backend()
    client = backend.client
    stale = list(client.scan_iter(match=f"{backend.prefix}:*", count=1000))  # this run's only
    for n in range(0, len(stale), 500):
        client.delete(*stale[n : n + 500])
    backend._groups_ready.clear()
    base = client.info("memory")["used_memory"]
    now = time.time()
    segments = enabled_segments()
    keys = visitor_keys("memory", visitors)
    version, expiry = notice_version(), repr(now + 86400)
    changes = pipeline._Changes()
    for start in range(0, visitors, 2000):
        updates = []
        for n, key in enumerate(keys[start : start + 2000]):
            p = Profile()
            r = random.Random(start + n)
            for i in range(r.randint(2, 8)):
                name = r.choice(EVENT_NAMES)
                props = {
                    "path": f"/p/{r.randint(1, 50)}/",
                    "category": f"c{r.randint(1, 12)}",
                    "device": r.choice(["desktop", "mobile"]),
                }
                if name == "purchase":
                    props["value"] = round(r.uniform(5, 80), 2)
                p.apply(
                    name,
                    now - r.uniform(0, 30 * 86400),
                    (1, i + 1),
                    props,
                    f"{r.getrandbits(128):032x}",
                )
            p.prune(now)
            updates.append(pipeline.settle(key, p, {}, segments, now, changes, new_profile=True))
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 2000]:
            pipe.hset(
                backend._m(key),
                mapping={NOTICE_FIELD: version, CONSENT_PREFIX + "personalization": expiry},
            )
        pipe.execute()
        backend.commit(0, updates, [])
    changes.rows.clear()
    used = client.info("memory")["used_memory"] - base
    # Cost per event at this population: a fresh batch through the real drain.
    fields = []
    for _ in range(sample_events):
        key = random.choice(keys)
        fields.append(
            (
                backend.partition_for(key),
                events.encode(
                    events.Event(visitor_key=key, name=random.choice(EVENT_NAMES), ts=time.time())
                ),
            )
        )
    for partition in range(backend.partitions):
        backend.append_events(partition, [f for p, f in fields if p == partition])
    from django.test.utils import override_settings

    started = time.perf_counter()
    with override_settings(SEGMENTS_DRAIN_LINGER_MS=0):  # no idle wait in this measurement
        for partition in range(backend.partitions):
            while pipeline.drain_partition(partition, max_seconds=3600).more:
                pass
    elapsed = time.perf_counter() - started
    return {
        "visitors": visitors,
        "bytes_per_visitor": used / visitors,
        "us_per_event": elapsed / sample_events * 1e6,
    }


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    roles = {
        "setup": lambda: setup(),
        "items": lambda: items(int(args[0])),
        "process": lambda: process(int(args[0])),
        "baseline-publish": lambda: baseline_publish(int(args[0])),
        "baseline-wait": lambda: baseline_wait(int(args[0])),
        "freshness": lambda: freshness(float(args[0]), float(args[1]), int(args[2])),
        "memory": lambda: memory(int(args[0]), int(args[1])),
    }
    result = roles[role]()
    connection.close()
    print(json.dumps(result))
