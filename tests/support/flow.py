"""Events flowing while a test breaks the store (a resharding, a failover): the clicks of a few
visitors sent through a web process's own backend, counting what it accepted and refused."""

import threading
import time

from segments import events
from segments.backends.base import BackendUnavailable


def send_click(backend, key: str, n: int, version: str, sent: dict | None = None) -> bool:
    """One click of ``key`` through the request path's exchange; whether it was accepted.

    ``sent``, if given, maps each click's event id to what became of it: ``True`` accepted,
    ``False`` refused (the store raised: before the write, or with the write's reply lost,
    so in doubt)."""
    event = events.Event(visitor_key=key, name="click", ts=time.time(), properties={"n": n})
    if sent is not None:
        sent[event.event_id] = False
    result = backend.exchange(
        key,
        purpose="personalization",
        notice_version=version,
        now=time.time(),
        events=[events.encode(event)],
    )
    if sent is not None:
        sent[event.event_id] = bool(result.consented)
    return bool(result.consented)


def click_until(
    stop: threading.Event,
    web,
    keys,
    version: str,
    accepted: dict,
    refused: list,
    *,
    round_pause: float,
    refusal_pause: float = 0.0,
    sent: dict | None = None,
) -> None:
    """Each of ``keys`` clicks in turn until ``stop``: ``accepted[key]`` counts what the store
    accepted, ``refused[0]`` what it refused (then waiting ``refusal_pause``); ``sent`` as
    :func:`send_click`'s."""
    n = 0
    while not stop.is_set():
        for key in keys:
            n += 1
            try:
                if send_click(web, key, n, version, sent):
                    accepted[key] += 1
            except BackendUnavailable:
                refused[0] += 1
                if refusal_pause:
                    time.sleep(refusal_pause)
        time.sleep(round_pause)
