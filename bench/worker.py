"""One benchmark process: prepares data, or serves one scenario's page views on command.

The orchestrator (:mod:`bench.request_cost`) starts ``python -m bench.worker ROLE [SCENARIO]``
with ``DJANGO_SETTINGS_MODULE`` set, and talks JSON lines: commands on stdin, one answer per
command on the original stdout (anything else printed goes to stderr). Page views go straight
through Django's WSGI handler, as a WSGI server would call it, with a browser-like environ.

Roles: ``setup-plugin`` (migrate, seed the demo, add the bench's segments), ``setup-wp``
(wagtail-personalisation's tables and segments) and ``serve SCENARIO``.
"""

import gc
import io
import json
import math
import os
import re
import socket
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter, defaultdict
from http.cookies import SimpleCookie
from time import perf_counter_ns, process_time_ns

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
PAGE_SLUG = "guides"
SEGMENT_COUNT = 50
PLUGIN_MODULES = ("consent.", "segments.", "personalization.", "cms_blocks.")
PLUGIN_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), app) + os.sep
    for app in ("consent", "segments", "personalization", "cms_blocks")
)

_out = None  # the protocol stream


def _protocol() -> None:
    global _out
    _out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (management commands, libraries) go to stderr


def reply(**data) -> None:
    _out.write(json.dumps(data) + "\n")
    _out.flush()


# --- data ------------------------------------------------------------------------------------
EVENTS = ["page_view", "page_view", "page_view", "add_to_cart", "purchase", "search", "signup"]
WINDOWS = ["10m", "30m", "1h", "6h", "1d", "7d", "30d"]


def plugin_rule(i: int) -> dict:
    """The i-th bench segment's rule: event counts over varied events, thresholds, windows."""
    rule = {
        "type": "event_count",
        "event": EVENTS[i % len(EVENTS)],
        "min": 1 + (i * 5) % 15,
        "window": WINDOWS[(i // len(EVENTS)) % len(WINDOWS)],
    }
    if i % 10 == 9:
        rule["max"] = rule["min"] + 20
    if i % 8 == 3:
        rule = {
            "type": "all",
            "conditions": [
                rule,
                {"type": "event_count", "event": "page_view", "min": 2, "window": "1h"},
            ],
        }
    return rule


def setup_plugin() -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from wagtail.models import Page

    from segments.models import Segment
    from segments.rules import compile_rule

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    migrated = time.perf_counter() - started
    call_command("seed_demo", verbosity=0, stdout=io.StringIO())
    for i in range(SEGMENT_COUNT):
        rule = plugin_rule(i)
        compile_rule(rule)
        Segment.objects.update_or_create(
            slug=f"bench-{i:02d}",
            defaults={"name": f"Bench {i:02d}", "rule": rule, "priority": i % 7},
        )
    experiments = setup_experiments()
    page = Page.objects.get(slug=PAGE_SLUG).specific
    return {
        "experiments": experiments,
        "page": page.url,
        "page_type": type(page).__name__,
        "segments": Segment.objects.filter(enabled=True).count(),
        "migrate_seconds": round(migrated, 1),
    }


EXPERIMENT_COUNT = 20
EXPERIMENT_PREFIX = "bench-x-"


def setup_experiments() -> int:
    """Twenty experiments on the demo's home page (its personalised welcome block), kept in
    draft: no scenario sees them through the database (the processes share it); the
    ``experiments`` command pins them as running in its own process only. Nine run inside a
    segment the bench visitor is never in (the request scans past them), nine for everyone
    (the visitor is enrolled in them), one is a holdout of the whole page and one the global
    holdout. Every arm the visitor can get shows what they would see without experiments (the
    engaged variant, or the usual choice), so that the two sides render the same content and
    differ by the experiments' own work only."""
    from wagtail.models import Site

    from experiments.models import Arm, Experiment
    from segments.models import Segment

    home = Site.objects.get(is_default_site=True).root_page.specific
    block = next(b for b in home.body if b.block_type == "personalised")
    variant = str(block.value["variants"].bound_blocks[0].id)
    never, _ = Segment.objects.update_or_create(
        slug="bench-never",
        defaults={
            "name": "Bench never",
            "rule": {"type": "event_count", "event": "never-sent", "min": 1, "window": "1d"},
            "enabled": False,
        },
    )
    Experiment.objects.filter(key__startswith=EXPERIMENT_PREFIX).delete()
    specs = [("block", never if n < 9 else None) for n in range(EXPERIMENT_COUNT - 2)]
    specs += [("holdout", None), ("global_holdout", None)]
    arms = {
        "block": ((variant, 1.0), (variant, 1.0)),
        "holdout": (("default", 0.0), ("personalised", 1.0)),
        "global_holdout": (("default", 1.0), ("personalised", 1.0)),
    }
    for n, (kind, segment) in enumerate(specs):
        e = Experiment.objects.create(
            name=f"Bench {n}",
            key=f"{EXPERIMENT_PREFIX}{n:02d}",
            kind=kind,
            page=home if kind != "global_holdout" else None,
            block_id=str(block.id) if kind == "block" else "",
            segment=segment,
        )
        for index, (key, weight) in enumerate(arms[kind]):
            Arm.objects.create(experiment=e, index=index, name=key, key=key, weight=weight)
    return Experiment.objects.filter(key__startswith=EXPERIMENT_PREFIX).count()


def setup_wp() -> dict:
    import django

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        django.setup()
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        migrated = time.perf_counter() - started
        from django.core import checks

        # The plugin's own checks complain that its middleware is not installed: not ours.
        found = [
            f"{m.id}: {m.msg}"
            for m in checks.run_checks()
            if not (m.id or "").startswith(("consent.", "segments.", "personalization."))
        ]
    from datetime import time as clock

    import wagtail
    import wagtail_personalisation
    from wagtail.models import Page
    from wagtail_personalisation import rules
    from wagtail_personalisation.models import Segment

    guides = Page.objects.get(slug=PAGE_SLUG)
    Segment.objects.all().delete()
    all_days = dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), True)
    for i in range(SEGMENT_COUNT):
        segment = Segment.objects.create(
            name=f"Bench {i:02d}", persistent=True, match_any=(i % 5 == 4)
        )
        kind = i % 4
        # Three rules each, mixing what wagtail-personalisation offers.
        rules.VisitCountRule.objects.create(
            segment=segment, counted_page=guides, operator="more_than", count=i % 7
        )
        if kind == 0:
            rules.TimeRule.objects.create(
                segment=segment, start_time=clock(0, 0), end_time=clock(23, 59, 59)
            )
            rules.DayRule.objects.create(segment=segment, **all_days)
        elif kind == 1:
            rules.QueryRule.objects.create(segment=segment, parameter="utm_source", value=f"s{i}")
            rules.DeviceRule.objects.create(segment=segment, desktop=True)
        elif kind == 2:
            rules.ReferralRule.objects.create(segment=segment, regex_string=r"example\.(com|org)")
            rules.TimeRule.objects.create(
                segment=segment, start_time=clock(0, 0), end_time=clock(23, 59, 59)
            )
        else:
            rules.DayRule.objects.create(segment=segment, **all_days)
            rules.UserIsLoggedInRule.objects.create(segment=segment, is_logged_in=False)
    rule_count = sum(m.objects.count() for m in rules.AbstractBaseRule.get_descendant_models())
    return {
        "wagtail": wagtail.__version__,
        "wagtail_personalisation": getattr(wagtail_personalisation, "__version__", "")
        or _dist_version("wagtail-personalisation"),
        "wagtail_modeladmin": _dist_version("wagtail-modeladmin"),
        "django": django.__version__,
        "segments": Segment.objects.count(),
        "rules": rule_count,
        "check": found,
        "warnings": _summarise_warnings(caught),
        "migrate_seconds": round(migrated, 1),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def _summarise_warnings(caught) -> list[str]:
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message} ({os.path.basename(w.filename)}:{w.lineno})"
        if text not in seen:
            seen.append(text)
    return seen[:20]


# --- serving ---------------------------------------------------------------------------------
class Browser:
    """Calls the WSGI application like a server would, for one visitor with a cookie jar."""

    def __init__(self, app, path: str, cookies: dict[str, str] | None = None):
        self.app = app
        self.cookies = dict(cookies or {})
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.errors = 0
        self.capture = True
        self.base = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost",
            "HTTP_USER_AGENT": BROWSER_UA,
            "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.7",
            "HTTP_ACCEPT_ENCODING": "gzip, deflate",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        self._set_cookie_header()

    def _set_cookie_header(self) -> None:
        if self.cookies:
            self.base["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        else:
            self.base.pop("HTTP_COOKIE", None)

    def _start_response(self, status, headers, exc_info=None):
        self.status = status
        if status[:3] != "200":
            self.errors += 1
        if self.capture:
            self.headers = headers
            changed = False
            for name, value in headers:
                if name.lower() == "set-cookie":
                    for morsel in SimpleCookie(value).values():
                        self.cookies[morsel.key] = morsel.value
                        changed = True
            if changed:
                self._set_cookie_header()

    def get(self) -> bytes:
        environ = self.base.copy()
        environ["wsgi.input"] = io.BytesIO()
        result = self.app(environ, self._start_response)
        try:
            return b"".join(result)
        finally:
            result.close()

    def run(self, n: int) -> int:
        """n page views; returns the elapsed nanoseconds (wall clock)."""
        return self.timed(n)[0]

    def timed(self, n: int) -> tuple[int, int]:
        """n page views; returns the elapsed wall-clock and CPU nanoseconds of this process
        (CPU time leaves out waiting for PostgreSQL and Redis, and time other processes had
        the CPU)."""
        app, base, start_response = self.app, self.base, self._start_response
        new_input = io.BytesIO
        cpu_started = process_time_ns()
        started = perf_counter_ns()
        for _ in range(n):
            environ = base.copy()
            environ["wsgi.input"] = new_input()
            result = app(environ, start_response)
            for _chunk in result:
                pass
            result.close()
        return perf_counter_ns() - started, process_time_ns() - cpu_started


def _segments_shown(body: bytes) -> list[str]:
    match = re.search(rb'data-testid="segments">(.*?)</span>', body, re.S)
    if not match:
        return []
    return [s.decode() for s in re.findall(rb"<b>(.*?)</b>", match.group(1))]


def _consent_cookie(action: str) -> dict[str, str]:
    from django.test import Client

    from consent.conf import get_setting

    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    response = client.post("/consent/", {"action": action})
    if response.status_code != 303:
        raise RuntimeError(f"POST /consent/ {action} answered {response.status_code}")
    name = get_setting("CONSENT_COOKIE_NAME")
    return {name: client.cookies[name].value}


class Scenario:
    def __init__(self, name: str):
        import django

        self.name = name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            django.setup()
            from django.core.handlers.wsgi import WSGIHandler
            from wagtail.models import Page

            self.app = WSGIHandler()
            self.path = Page.objects.get(slug=PAGE_SLUG).specific.url
            cookies = {}
            if name == "consented":
                cookies = _consent_cookie("accept_all")
            elif name == "refused":
                cookies = _consent_cookie("reject_all")
            self.browser = Browser(self.app, self.path, cookies)
            first = self.browser.get()
        self.warnings = _summarise_warnings(caught)
        if self.browser.errors:
            raise RuntimeError(f"{self.path} answered {self.browser.status}: {first[:2000]!r}")
        if name == "consented":
            # A visitor with some history: a dozen page views, drained into memberships by the
            # same code a worker runs, so the membership hash the request reads is realistic.
            for _ in range(12):
                self.browser.get()
            from segments.api import get_backend
            from segments.stream.drain import drain_partition

            for partition in range(get_backend().partitions):
                drain_partition(partition, max_seconds=10)
        self.warmup_ms = self._warm_up()
        self.browser.capture = False
        self.body = self.browser.get()
        self.shown = _segments_shown(self.body)

    def _warm_up(self) -> float:
        """Page views for about 1.5 s (at least 3); the median of the later half, in ms."""
        deadline = time.perf_counter() + 1.5
        times = []
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 300):
            times.append(self.browser.run(1))
        return statistics.median(times[len(times) // 2 :]) / 1e6

    def ready(self) -> dict:
        return {
            "path": self.path,
            "warmup_ms": self.warmup_ms,
            "segments_shown": self.shown,
            "bytes": len(self.body),
            "cookies": sorted(self.browser.cookies),
            "warnings": self.warnings,
            "python": sys.version.split()[0],
            "versions": _versions(),
        }

    # -- commands -----------------------------------------------------------------------------
    def cmd_run(self, n: int) -> dict:
        errors = self.browser.errors
        ns, cpu_ns = self.browser.timed(n)
        return {"ns": ns, "cpu_ns": cpu_ns, "n": n, "errors": self.browser.errors - errors}

    def cmd_count(self, n: int) -> dict:
        """Redis round trips (sends to the server, a pipeline counts once) and SQL queries per
        page view, counted in this process; and the server's own EVALSHA/EVAL counter."""
        from django.db import connection

        # One page view first, not counted: after the process sat idle (while the others
        # started) it may carry connection upkeep, the pool's health-check PING, which a
        # thread serving pages every 30 s or more often never sends.
        self.browser.run(1)
        server = _server_stats()
        sends: list[list[str]] = []
        queries: list[str] = []
        patch = _count_redis(sends)

        def count_query(execute, sql, params, many, context):
            queries.append(sql)
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(count_query):
                for _ in range(n):
                    self.browser.run(1)
        finally:
            patch()
        after = _server_stats()
        commands = Counter(c for send in sends for c in send)
        kinds = Counter(re.match(r"\s*(\w+)", q).group(1).upper() for q in queries)
        result = {
            "n": n,
            "redis_round_trips": len(sends) / n,
            "redis_commands": {k: v / n for k, v in commands.most_common()},
            "db_queries": len(queries) / n,
            "db_query_kinds": {k: v / n for k, v in kinds.most_common()},
        }
        if server and after:
            result["server_scripts"] = (after["scripts"] - server["scripts"]) / n
        return result

    def cmd_experiments(self, n: int) -> dict:
        """The same page (the home page, with its personalised block) for two consented
        visitors with the same history, one enrolled in 20 running experiments on the page and
        one with none running, in batches of ``n`` page views alternating between them: the
        CPU time the experiments add per request (paired by round), the CPU time spent in the
        decision itself (``personalization.decide``), and the Redis calls and SQL queries per
        request on both sides."""
        import personalization.arms
        from consent.models import ConsentRecord
        from experiments import runtime
        from experiments.models import Experiment
        from segments.api import get_backend
        from segments.stream.drain import drain_partition

        rows = (
            Experiment.objects.filter(key__startswith=EXPERIMENT_PREFIX)
            .select_related("segment")
            .prefetch_related("arms")
            .order_by("pk")
        )
        running, none = runtime.index(rows), runtime.index([])

        def visitor(experiments) -> tuple[Browser, str]:
            runtime.pin(experiments)
            for _ in range(20):  # one outside the global holdout: both sides see the same
                browser = Browser(self.app, "/", _consent_cookie("accept_all"))
                key = ConsentRecord.objects.order_by("-pk").first().visitor_key
                if running.global_holdout.fresh_arm(key) != 0:
                    break
            for _ in range(13):  # a dozen earlier page views, drained, as for "consented"
                browser.get()
            for partition in range(get_backend().partitions):
                drain_partition(partition, max_seconds=10)
            browser.capture = False
            return browser, key

        def variants(body: bytes) -> list[bytes]:
            return re.findall(rb'data-tailored-variant="([^"]*)"', body)

        def counted(browser: Browser, seconds: float = 3.0, at_least: int = 50) -> dict:
            """Redis sends and SQL queries per page view over ``seconds`` of page views (at
            least ``at_least``). Periodic upkeep that falls on some page views only (the
            definitions' freshness check, at most every SEGMENTS_DEFINITIONS_CHECK_SECONDS
            per process, which covers the experiments too; the segments' and the consent
            notice's periodic re-reads) is per process and per second, not per request, and
            lands on either side by chance: the steady state is the median page view's count,
            and the rest is reported per second. Any query of the experiments' own tables
            other than the shared check is counted apart (there should be none)."""
            import segments.definitions

            sends: list[list[str]] = []
            queries: list[str] = []
            per_view: list[int] = []
            checks = [0]
            real_read = segments.definitions._read_stamps

            def read():
                checks[0] += 1
                return real_read()

            def count(execute, sql, params, many, context):
                queries.append(sql)
                return execute(sql, params, many, context)

            undo = _count_redis(sends)
            segments.definitions._read_stamps = read
            n, started = 0, time.monotonic()
            try:
                with connection.execute_wrapper(count):
                    while n < at_least or time.monotonic() - started < seconds:
                        before = len(queries)
                        browser.run(1)
                        per_view.append(len(queries) - before)
                        n += 1
            finally:
                elapsed = time.monotonic() - started
                segments.definitions._read_stamps = real_read
                undo()
            calls = Counter(c for send in sends for c in send)
            steady = statistics.median(per_view)
            check_sql = "SELECT (SELECT COUNT(*)"
            theirs = sum(1 for q in queries if "experiments_" in q and check_sql not in q)
            per_query = Counter(queries)
            return {
                "n": n,
                "seconds": elapsed,
                "round_trips": len(sends) / n,
                "evalsha": calls["EVALSHA"] / n,
                "queries": steady,
                "mean_queries": len(queries) / n,
                "periodic_per_second": (len(queries) - steady * n - checks[0]) / elapsed,
                "experiments_queries_per_second": theirs / elapsed,
                "query_counts": {q: c / n for q, c in per_query.most_common()},
                "checks_per_second": checks[0] / elapsed,
            }

        def replay_cpu(browser: Browser, iterations: int = 2000, rounds: int = 15) -> dict:
            """The experiments' own request path, in this process: the decisions one page
            view makes (captured from a real one, then called again with the same request,
            candidates and arguments) and the parsing of the sticky arms its round trip
            returns, ``iterations`` times per round, CPU time, with the 20 experiments and
            with none (the same calls), alternating; the median of per-round differences."""
            import cms_blocks.blocks
            import cms_blocks.models
            from segments.backends.redis import _pairs

            original = personalization.arms.decide
            calls = []

            def capture(*args, **kwargs):
                calls.append((args, kwargs))
                return original(*args, **kwargs)

            runtime.pin(running)
            personalization.arms.decide = capture
            cms_blocks.blocks.decide = cms_blocks.models.decide = capture
            try:
                browser.run(1)
            finally:
                personalization.arms.decide = original
                cms_blocks.blocks.decide = cms_blocks.models.decide = original
            state = calls[0][0][0].personalization.experiment_state()
            flat = [x for k, v in state[1].items() for x in (k, v)]  # as the reply has them

            def one_side(experiments, reply) -> float:
                runtime.pin(experiments)
                for args, kwargs in calls:  # warm
                    original(*args, **kwargs)
                gc.collect()
                started = process_time_ns()
                for _ in range(iterations):
                    if reply:
                        _pairs(reply)
                    for args, kwargs in calls:
                        original(*args, **kwargs)
                return (process_time_ns() - started) / iterations / 1e6

            with_ms, without_ms = [], []
            for r in range(rounds):
                sides = [(running, flat, with_ms), (none, [], without_ms)]
                for experiments, reply, into in sides if r % 2 else sides[::-1]:
                    into.append(one_side(experiments, reply))
            diffs = [a - b for a, b in zip(with_ms, without_ms, strict=True)]
            return {
                "calls": len(calls),
                "sticky": len(state[1]),
                "iterations": iterations,
                "rounds": rounds,
                "with_ms": statistics.median(with_ms),
                "without_ms": statistics.median(without_ms),
                "added_ms": statistics.median(diffs),
                "added_iqr": _quartiles(diffs),
            }

        def decide_cpu(browser: Browser, count: int) -> float:
            original = personalization.arms.decide
            spent = [0]

            def timed(*args, **kwargs):
                started = process_time_ns()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent[0] += process_time_ns() - started

            personalization.arms.decide = timed
            import cms_blocks.blocks
            import cms_blocks.models

            cms_blocks.blocks.decide = cms_blocks.models.decide = timed
            try:
                browser.run(count)
            finally:
                personalization.arms.decide = original
                cms_blocks.blocks.decide = cms_blocks.models.decide = original
            return spent[0] / count / 1e6

        from django.db import connection

        try:
            without, _ = visitor(none)
            enrolled, key = visitor(running)  # the drain enrols them (sticky arms in Redis)
            sticky = sum(1 for f in get_backend().visitor_data(key).fields if f[:2] == "x:")
            runtime.pin(running)
            body_with = enrolled.get()
            runtime.pin(none)
            body_without = without.get()
            with_ms, without_ms = [], []
            deadline = time.monotonic() + 30
            rounds = 0
            while rounds < 10 or (time.monotonic() < deadline and rounds < 300):
                r, rounds = rounds, rounds + 1
                order = [(running, enrolled, with_ms), (none, without, without_ms)]
                for experiments, browser, into in order if r % 2 else order[::-1]:
                    runtime.pin(experiments)
                    browser.run(2)  # settle caches after the switch
                    _wall, cpu = browser.timed(n)
                    into.append(cpu / n / 1e6)
            replay = replay_cpu(enrolled)
            runtime.pin(running)
            decided = decide_cpu(enrolled, 200)
            runtime.pin(none)
            decided_without = decide_cpu(without, 200)
            # Counted with the experiments running for real in this process (read from the
            # database, refreshed by the freshness check, not pinned): what a site sees. Any
            # other running experiment (the demo's, on the same block) is paused meanwhile,
            # so the two sides differ by the 20 alone. Other processes do not notice: an
            # update() leaves updated_at alone, and they are idle now anyway.
            mine = Experiment.objects.filter(key__startswith=EXPERIMENT_PREFIX)
            others = Experiment.objects.filter(
                pk__in=list(
                    Experiment.objects.filter(status=Experiment.Status.RUNNING)
                    .exclude(key__startswith=EXPERIMENT_PREFIX)
                    .values_list("pk", flat=True)
                )
            )
            others.update(status=Experiment.Status.PAUSED)
            try:
                mine.update(status=Experiment.Status.RUNNING)
                runtime.forget()
                enrolled.run(2)
                loaded = len(runtime.running().experiments)
                counts = counted(enrolled)
                mine.update(status=Experiment.Status.DRAFT)
                runtime.forget()
                without.run(2)
                assert not runtime.running()
                counts_without = counted(without)
            finally:
                mine.update(status=Experiment.Status.DRAFT)
                others.update(status=Experiment.Status.RUNNING)
        finally:
            runtime.forget()
        diffs = [a - b for a, b in zip(with_ms, without_ms, strict=True)]
        return {
            "experiments": len(running.experiments),
            "sticky_arms": sticky,
            "same_variants": variants(body_with) == variants(body_without),
            "variants": [v.decode() for v in variants(body_with)],
            "rounds": rounds,
            "n": n,
            "with_cpu_ms": statistics.median(with_ms),
            "without_cpu_ms": statistics.median(without_ms),
            "added_cpu_ms": statistics.median(diffs),
            "added_iqr": _quartiles(diffs),
            "added_ci95": 1.96
            * 1.2533
            * (_quartiles(diffs)[1] - _quartiles(diffs)[0])
            / 1.349
            / math.sqrt(len(diffs)),
            "decide_cpu_ms": decided,
            "decide_cpu_ms_without": decided_without,
            "replay": replay,
            "loaded": loaded,
            "counted": counts,
            "counted_without": counts_without,
            "redis_round_trips": counts["round_trips"],
            "redis_round_trips_without": counts_without["round_trips"],
            "evalsha": counts["evalsha"],
            "db_queries": counts["queries"],
            "db_queries_without": counts_without["queries"],
        }

    def cmd_breakdown(self, n: int) -> dict:
        return breakdown(self, n)

    def cmd_redis(self, n: int) -> dict:
        return redis_costs(self, n)

    def cmd_profile(self, n: int) -> dict:
        return profile(self, n)


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def _versions() -> dict:
    import django
    import wagtail

    result = {"django": django.__version__, "wagtail": wagtail.__version__}
    try:
        import wagtail_personalisation  # noqa: F401

        result["wagtail-personalisation"] = _dist_version("wagtail-personalisation")
    except ImportError:
        pass
    return result


def _capture_sends(on_send) -> callable:
    """Call ``on_send(bytes)`` with everything each Redis connection sends (a pipeline is one
    send); returns the function that undoes it."""
    try:
        from redis.connection import AbstractConnection
    except ImportError:
        return lambda: None
    original = AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        parts = [command] if isinstance(command, bytes | bytearray | str) else command
        on_send(b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts))
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command

    def undo():
        AbstractConnection.send_packed_command = original

    return undo


def _count_redis(sends: list) -> callable:
    """Count what every Redis connection sends, as the command names of each send; returns the
    function that undoes it."""
    command_re = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")
    return _capture_sends(
        lambda data: sends.append([m.decode().upper() for m in command_re.findall(data)])
    )


def _redis_client():
    from django.conf import settings

    url = getattr(settings, "BENCH_REDIS_URL", "")
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url)


def _server_stats() -> dict | None:
    client = _redis_client()
    if client is None:
        return None
    try:
        stats = client.info("commandstats")
    except Exception:
        return None
    finally:
        client.close()
    scripts = sum(stats.get(k, {}).get("calls", 0) for k in ("cmdstat_evalsha", "cmdstat_eval"))
    usec = [
        stats[k]["usec_per_call"] for k in ("cmdstat_evalsha",) if k in stats and stats[k]["calls"]
    ]
    return {"scripts": scripts, "evalsha_usec_per_call": usec[0] if usec else None}


# --- where the plugin's time goes ----------------------------------------------------------
class Timers:
    def __init__(self):
        self.ns: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.order: list[str] = []  # by first start: callers before what they call
        self.undo: list = []
        self.depth = 0
        self.outer_ns = self.outer_cpu = 0  # time in the outermost pieces: each counted once

    def time(self, label: str, call, *args, **kwargs):
        if label not in self.order:
            self.order.append(label)
        self.depth += 1
        started, cpu_started = perf_counter_ns(), process_time_ns()
        try:
            return call(*args, **kwargs)
        finally:
            cpu, ns = process_time_ns() - cpu_started, perf_counter_ns() - started
            self.cpu[label] += cpu
            self.ns[label] += ns
            self.calls[label] += 1
            self.depth -= 1
            if not self.depth:
                self.outer_cpu += cpu
                self.outer_ns += ns

    def wrap(self, owner, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)
        timer = self.time

        def timed(*args, **kwargs):
            return timer(label, original, *args, **kwargs)

        setattr(owner, attribute, timed)
        self.undo.append(lambda: setattr(owner, attribute, original))

    def restore(self) -> None:
        for undo in reversed(self.undo):
            undo()


def breakdown(scenario: Scenario, n: int) -> dict:
    """Time the plugin's request-path pieces over n page views (nested: a piece's time includes
    the pieces it calls)."""
    from django.template import library

    import consent.cookies
    import consent.standing
    import personalization.visitor
    import segments.events
    import segments.recording
    from personalization.visitor import VisitorContext
    from segments.api import get_backend

    timers = Timers()
    timers.wrap(
        consent.cookies, "inspect", "consent cookie: verify signature, parse (cookies.inspect)"
    )
    timers.wrap(consent.standing, "honoured", "consent cookie: still current? (standing, cache)")
    timers.wrap(consent.cookies, "visitor_key", "  of which visitor key HMAC (visitor_key)")
    timers.wrap(VisitorContext, "segments", "request.segments (first use: exchange + union)")
    timers.wrap(VisitorContext, "finish", "VisitorContext.finish (after the response)")
    timers.wrap(personalization.visitor, "exchange", "  segments.api.exchange (incl. round trip)")
    timers.wrap(segments.recording, "notice_version", "    notice_version()")
    timers.wrap(segments.events, "encode", "    encode the page-view event")
    backend = get_backend()
    if hasattr(backend, "_call_exchange"):
        timers.wrap(backend, "_call_exchange", "    Redis EVALSHA call (client + round trip)")
    timers.wrap(personalization.visitor, "context_segments", "  context-only segments")
    timers.wrap(personalization.visitor, "request_context", "  request context")
    timers.wrap(personalization.visitor, "page_view", "  build page-view event")
    timers.wrap(personalization.visitor, "schedule_drain", "  schedule_drain (drain.delay)")

    # The plugin's template tags (consent banner, Consent Mode signals).
    for node_class in (library.InclusionNode, library.SimpleNode):
        original_render = node_class.render

        def render(self, context, _original=original_render):
            func = self.func
            if not func.__module__.startswith(PLUGIN_MODULES):
                return _original(self, context)
            return timers.time(f"template tag {{% {func.__name__} %}}", _original, self, context)

        node_class.render = render
        timers.undo.append(lambda c=node_class, r=original_render: setattr(c, "render", r))

    try:
        ns_total, cpu_total = scenario.browser.timed(n)
    finally:
        timers.restore()
    return {
        "n": n,
        "request_ms": ns_total / n / 1e6,
        "request_cpu_ms": cpu_total / n / 1e6,
        "plugin_ms": timers.outer_ns / n / 1e6,  # all the pieces, nested ones counted once
        "plugin_cpu_ms": timers.outer_cpu / n / 1e6,
        "pieces": [
            {
                "label": k,
                "ms": timers.ns[k] / n / 1e6,
                "cpu_ms": timers.cpu[k] / n / 1e6,
                "calls": timers.calls[k] / n,
            }
            for k in timers.order
        ],
    }


def redis_costs(scenario: Scenario, n: int) -> dict:
    """What one round trip to this Redis costs, measured from here."""
    from django.conf import settings

    from consent.api import notice_version
    from segments.api import exchange, get_backend, tracking_purpose

    url = getattr(settings, "BENCH_REDIS_URL", "")
    if not url:
        return {}
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    raw = []
    with socket.create_connection((parts.hostname, parts.port or 6379), 1) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cpu_started = process_time_ns()
        for _ in range(n):
            started = perf_counter_ns()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            sock.recv(64)
            raw.append(perf_counter_ns() - started)
        raw_cpu = (process_time_ns() - cpu_started) / n
    client = _redis_client()
    ping = []
    for _ in range(n):
        started = perf_counter_ns()
        client.ping()
        ping.append(perf_counter_ns() - started)
    client.close()
    # The plugin's own call (read-only) for this scenario's visitor.
    from django.test import RequestFactory

    from consent import cookies

    request = RequestFactory().get(scenario.path)
    request.COOKIES = dict(scenario.browser.cookies)
    key = cookies.read(request).visitor_key
    if key is None:
        return {}
    backend = get_backend()
    purpose, version = tracking_purpose(), notice_version()
    calls = []
    cpu_started = process_time_ns()
    for _ in range(n):
        started = perf_counter_ns()
        backend.exchange(key, purpose=purpose, notice_version=version, now=time.time())
        calls.append(perf_counter_ns() - started)
    exchange_cpu = (process_time_ns() - cpu_started) / n
    api_calls = []
    for _ in range(n):
        started = perf_counter_ns()
        exchange(key)
        api_calls.append(perf_counter_ns() - started)
    # Scheduling a drain: publishing a task to the (in-memory) broker.
    from segments.api import schedule_drain

    drains = []
    for _ in range(min(n, 200)):
        started = perf_counter_ns()
        schedule_drain(key)
        drains.append(perf_counter_ns() - started)
    stats = _server_stats() or {}
    med = statistics.median
    return {
        "raw_ping_ms": med(raw) / 1e6,
        "redis_py_ping_ms": med(ping) / 1e6,
        "raw_ping_cpu_ms": raw_cpu / 1e6,
        "backend_exchange_ms": med(calls) / 1e6,
        "backend_exchange_cpu_ms": exchange_cpu / 1e6,
        "api_exchange_ms": med(api_calls) / 1e6,
        "schedule_drain_ms": med(drains) / 1e6,
        "server_evalsha_ms": (stats.get("evalsha_usec_per_call") or 0) / 1e3,
        "memberships": len(
            backend.exchange(
                key, purpose=purpose, notice_version=version, now=time.time()
            ).memberships
        ),
        **_warm_middleware(scenario, n),
    }


def _payload_round_trip(plugin, factory, path: str, cookies: dict, n: int) -> dict:
    """What the request path's round trip itself costs this process: the very bytes a page view
    sends (captured from one), written to a plain socket and the reply parsed by hiredis."""
    import hiredis

    from segments.api import get_backend

    captured = []
    undo = _capture_sends(captured.append)
    try:
        request = factory.get(path)
        request.COOKIES = cookies
        plugin(request)
    finally:
        undo()
    payloads = [p for p in captured if b"EVALSHA" in p]
    if not payloads:
        return {}
    payload = payloads[-1]
    # A connection set up like the request path's (AUTH, SELECT), then only its socket is used.
    pool = get_backend().client.connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    connection.connect()
    sock = connection._sock
    reader = hiredis.Reader(encoding="utf-8")
    walls = []
    cpu_started = process_time_ns()
    for _ in range(n):
        started = perf_counter_ns()
        sock.sendall(payload)
        reply = False
        while reply is False:
            reader.feed(sock.recv(65536))
            reply = reader.gets()
        walls.append(perf_counter_ns() - started)
    cpu = (process_time_ns() - cpu_started) / n
    connection.disconnect()
    return {
        "payload_bytes": len(payload),
        "payload_round_trip_ms": statistics.median(walls) / 1e6,
        "payload_round_trip_cpu_ms": cpu / 1e6,
    }


def _warm_middleware(scenario: Scenario, n: int) -> dict:
    """The plugin's two middleware around a view that reads ``request.segments`` (so the page
    view is recorded and memberships read: one round trip), against the bare view, in a tight
    loop: the request path's own cost with warm caches, without templates. Also the same with
    the round trip answered from memory (the reply the real call just gave, returned in place of
    the backend's round trip without touching the network): the plugin's Python alone."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from consent.middleware import ConsentMiddleware
    from personalization.middleware import PersonalizationMiddleware
    from segments.api import get_backend

    def view(request):
        return HttpResponse(f"{len(request.segments)}", content_type="text/html")

    def bare(request):
        return HttpResponse("0", content_type="text/html")

    factory = RequestFactory(HTTP_USER_AGENT=BROWSER_UA, HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")
    cookies = dict(scenario.browser.cookies)
    plugin = ConsentMiddleware(PersonalizationMiddleware(view))

    def timed(handler) -> tuple[list[int], float]:
        walls = []
        cpu_started = process_time_ns()
        for _ in range(n):
            request = factory.get(scenario.path)
            request.COOKIES = cookies
            started = perf_counter_ns()
            handler(request)
            walls.append(perf_counter_ns() - started)
        return walls, (process_time_ns() - cpu_started) / n

    # The backend's method that writes the call and reads its reply, shadowed on the instance.
    backend = get_backend()
    real_call = backend._round_trip
    replies = []

    def recording(*args):
        replies.append(reply := real_call(*args))
        return reply

    def answered(*args):
        return replies[-1]

    def timed_answered() -> tuple[list[int], float]:
        backend._round_trip = answered
        try:
            return timed(plugin)
        finally:
            del backend._round_trip

    backend._round_trip = recording
    try:
        timed(plugin)  # warm up, and the reply to answer with
    finally:
        del backend._round_trip
    if not replies:
        raise RuntimeError("the request path did not make its round trip")
    rounds = [(timed(bare), timed(plugin), timed_answered()) for _ in range(5)]
    med = statistics.median
    return {
        **_payload_round_trip(plugin, factory, scenario.path, cookies, n),
        "warm_bare_ms": med(med(b[0]) for b, _, _ in rounds) / 1e6,
        "warm_plugin_ms": med(med(p[0]) for _, p, _ in rounds) / 1e6,
        # CPU of the whole loop (request construction included on both sides, so it cancels).
        "warm_added_cpu_ms": med(p[1] - b[1] for b, p, _ in rounds) / 1e6,
        "warm_added_ms": med(med(p[0]) - med(b[0]) for b, p, _ in rounds) / 1e6,
        "warm_answered_ms": med(med(a[0]) for _, _, a in rounds) / 1e6,
        "warm_answered_added_cpu_ms": med(a[1] - b[1] for b, _, a in rounds) / 1e6,
        "warm_answered_added_ms": med(med(a[0]) - med(b[0]) for b, _, a in rounds) / 1e6,
    }


def profile(scenario: Scenario, n: int) -> dict:
    """cProfile over n page views: the plugin's functions by own time and cumulative time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    scenario.browser.run(n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    total = stats.total_tt
    for (filename, line, func), (_cc, calls, tt, ct, _callers) in stats.stats.items():
        if filename.startswith(PLUGIN_DIRS):
            name = (
                f"{os.path.relpath(filename, os.path.dirname(PLUGIN_DIRS[0][:-1]))}:{line} {func}"
            )
            rows.append((name, calls / n, tt / n * 1e3, ct / n * 1e3))
    rows.sort(key=lambda r: -r[3])
    return {
        "n": n,
        "total_ms": total / n * 1e3,
        "plugin_own_ms": sum(r[2] for r in rows),
        "by_cumulative": [
            {"function": r[0], "calls": r[1], "own_ms": r[2], "cum_ms": r[3]} for r in rows[:25]
        ],
    }


def serve(name: str) -> None:
    scenario = Scenario(name)
    reply(ok=True, **scenario.ready())
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            reply(ok=True)
            return
        try:
            gc.collect()
            handler = getattr(scenario, f"cmd_{command['cmd']}")
            reply(ok=True, **handler(int(command.get("n", 1))))
        except Exception:
            reply(ok=False, error=traceback.format_exc())


def main() -> None:
    _protocol()
    role = sys.argv[1]
    try:
        if role == "setup-plugin":
            reply(ok=True, **setup_plugin())
        elif role == "setup-wp":
            reply(ok=True, **setup_wp())
        elif role == "serve":
            serve(sys.argv[2])
        else:
            raise SystemExit(f"unknown role {role!r}")
    except Exception:
        reply(ok=False, error=traceback.format_exc())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
