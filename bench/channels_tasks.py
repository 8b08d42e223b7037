"""Work done inside the channels benchmark's subprocesses (Django configured with
bench.settings_pipeline). ``python -m bench.channels_tasks ROLE [ARGS]`` prints one JSON line."""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_pipeline")
django.setup()

from django.db import connection  # noqa: E402

from consent.api import consent_changed, consents_recorded, grant_imported, visitor_key  # noqa: E402
from segments.models import Segment  # noqa: E402
from tailored_channels.fanout import fan_out as place_cursor  # noqa: E402
from tailored_channels.models import Delivery, Destination  # noqa: E402


def destinations(count: int, url: str, segments: str = "all") -> dict:
    """``count`` webhook destinations of every segment (or of ``segments``), for visitors
    granting the tracking purpose (what the imported Online Retail customers granted)."""
    slugs = (
        list(Segment.objects.values_list("slug", flat=True))
        if segments == "all"
        else segments.split(",")
    )
    for n in range(count):
        Destination.objects.create(
            name=f"bench-{n}", kind="webhook", url=url, segments=slugs, purpose="personalization"
        )
    place_cursor()
    return {"destinations": count, "segments": len(slugs)}


def beat(seconds: float) -> dict:
    """Celery beat's channels entries at their default intervals, for ``seconds``."""
    from tailored_channels.conf import BEAT_SCHEDULE
    from tailored_channels.tasks import deliver_due, fan_out

    every = {
        fan_out: BEAT_SCHEDULE["channels-fan-out"]["schedule"].total_seconds(),
        deliver_due: BEAT_SCHEDULE["channels-deliver-due"]["schedule"].total_seconds(),
    }
    last = dict.fromkeys(every, 0.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for task, interval in every.items():
            if time.monotonic() - last[task] >= interval:
                task.delay()
                last[task] = time.monotonic()
        time.sleep(0.5)
    return {}


def million(changes: int, visitors: int, url: str) -> dict:
    """``changes`` membership changes of ``visitors`` consenting visitors, written to the
    segments' history in bulk (COPY) after one webhook destination placed its cursor."""
    Destination.objects.create(
        name="bench-million", kind="webhook", url=url, segments=["s0", "s1"], purpose="marketing"
    )
    place_cursor()
    keys = [visitor_key(f"bench-million-{n}") for n in range(visitors)]
    started = time.perf_counter()
    # Set-up, not measured: the visitors are new, so what consent_changed's receivers do for
    # each (mirror their consent into the fast store, look for removals to propagate) is not
    # needed by the fan-out, and took 8 ms a visitor.
    signals = (consent_changed, consents_recorded)
    receivers = [signal.receivers for signal in signals]
    for signal in signals:
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    try:
        for start in range(0, len(keys), 20_000):
            grant_imported(
                keys[start : start + 20_000], frozenset({"personalization", "marketing"})
            )
    finally:
        for signal, kept in zip(signals, receivers, strict=True):
            signal.receivers = kept
            signal.sender_receivers_cache.clear()
    granted = time.perf_counter() - started
    started = time.perf_counter()
    now = "2026-01-01 00:00:00+00"
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY segments_membershipchange (visitor_key, segment, entered, at, reason) FROM STDIN"
        ) as copy,
    ):
        for n in range(changes):
            key = keys[n % visitors]
            step = n // visitors
            copy.write_row((key, f"s{step % 2}", step % 4 < 2, now, ""))
    return {"grant_seconds": granted, "write_seconds": time.perf_counter() - started}


def kick() -> dict:
    """What beat would send meanwhile: the fan-out, and the sweep of due deliveries."""
    from tailored_channels.tasks import deliver_due, fan_out

    fan_out.delay()
    deliver_due.delay()
    return {}


def settle(timeout: float = 600) -> dict:
    """Start the fan-out now and wait until every membership change has been read and every
    delivery sent: the time the destinations add after the drain."""
    from segments.api import last_membership_change
    from tailored_channels.models import Cursor
    from tailored_channels.tasks import deliver_due, fan_out

    started = time.perf_counter()
    fan_out.delay()
    while time.perf_counter() - started < timeout:
        cursor = Cursor.objects.filter(name="changes").first()
        caught_up = cursor is not None and cursor.position >= last_membership_change()
        if caught_up and not Delivery.objects.exclude(status="delivered").exists():
            return {
                "seconds": time.perf_counter() - started,
                "deliveries": Delivery.objects.count(),
            }
        deliver_due.delay()
        time.sleep(0.25)
    return {"seconds": None}


def progress() -> dict:
    delivered = Delivery.objects.filter(status="delivered").count()
    pending = Delivery.objects.exclude(status="delivered").count()
    return {"delivered": delivered, "pending": pending}


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    roles = {
        "destinations": lambda: destinations(int(args[0]), args[1]),
        "beat": lambda: beat(float(args[0])),
        "million": lambda: million(int(args[0]), int(args[1]), args[2]),
        "kick": kick,
        "settle": settle,
        "progress": progress,
    }
    result = roles[role]()
    connection.close()
    print(json.dumps(result))
