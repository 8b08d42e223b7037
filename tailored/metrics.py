"""Prometheus metrics: who may read them, scrape-time collectors, and the exposition.

Counters and histograms are ``prometheus_client`` objects defined by the apps that count
(``segments.metrics``, ``segments_ml.metrics``); they work in gunicorn's multiprocess mode
when ``PROMETHEUS_MULTIPROC_DIR`` is set (docs/operations.md). Gauges that describe shared
state (stream lengths, the workers' heartbeat) are read when the endpoint is scraped, by
functions apps register here from their ``ready()``: ``f() -> iterable of metric families``.
A collector that fails is skipped and counted (``tailored_scrape_errors_total``), so an
outage of Redis does not hide the database's metrics.
"""

import hmac
import ipaddress
import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .conf import get_setting

ScrapeCollector = Callable[[], Iterable]

_collectors: dict[str, ScrapeCollector] = {}

SCRAPE_ERRORS = Counter(
    "tailored_scrape_errors",
    "Scrape-time collectors that failed (the fast store unreachable, say), by collector.",
    ["collector"],
)


def register_collector(name: str, collector: ScrapeCollector) -> None:
    """Add (or replace, by name) a function run at each scrape, yielding metric families
    (``prometheus_client.core.GaugeMetricFamily`` and the like)."""
    _collectors[name] = collector


class _ScrapeTime:
    def collect(self):
        for name, collector in list(_collectors.items()):
            try:
                families = list(collector())
            except Exception:
                SCRAPE_ERRORS.labels(name).inc()
                continue
            yield from families


class _Everything:
    """This process's own metrics (or, in multiprocess mode, every process's), then the
    scrape-time ones (after them, so a scrape error they count shows in the same scrape)."""

    def __init__(self, base):
        self.base = base

    def collect(self):
        scrape_time = list(_ScrapeTime().collect())
        yield from self.base.collect()
        yield from scrape_time


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = CollectorRegistry()
        MultiProcessCollector(base)
    else:
        base = REGISTRY
    return generate_latest(_Everything(base)), CONTENT_TYPE_LATEST


def allowed(authorization: str, remote_addr: str) -> bool:
    """Whether a scrape may read the metrics: the bearer token matches, or the client address
    is in the allow-list. Both unset: nobody (the endpoint is off)."""
    token = get_setting("TAILORED_METRICS_TOKEN")
    if token:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    networks = get_setting("TAILORED_METRICS_ALLOWED_IPS")
    if networks and remote_addr:
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
    return False
