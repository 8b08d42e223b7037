"""``python -m bench --only recommendations [--quick] [--strict]``: recommendations measured.

1. **Offline** (``recommendations.evaluation``, protocol in docs/recommendations.md): every
   strategy on Online Retail with a time split, precision/recall/nDCG/hit rate@10 and coverage,
   for "any item" and "items new to the customer", next to the issue's targets; and the time to
   train the factorisation model on all of it.
2. **Serving**: one worker process (settings ``bench.settings_blocks``, real PostgreSQL and
   Redis) renders a demo product page with a "bought together" recommendations block (4 items,
   the co-occurrence counts filled) and the same page without it, interleaved round by round,
   for a consented visitor (one round trip: the page view, which returns their list) and one
   who refused; target: with / without <= 1.15.
3. **Pipeline throughput** (not with ``--quick``): the Online Retail replay drained by a
   2-process Celery worker with recommendations on, then the same in a fresh database with
   them off, in one run (:func:`bench.pipeline._throughput`); target: >= 20,000 events/s
   with them on. Also the workers' CPU seconds per 100,000 events, with and without.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

from .pipeline import DATA
from .report import verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET_RENDER = 1.15
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(options) -> dict:
    from recommendations import evaluation

    from .request_cost import run_worker, start_services

    log("recommendations: offline evaluation on Online Retail")
    started = time.perf_counter()
    report = evaluation.run(DATA)
    offline = {
        "table": evaluation.table(report),
        "verdicts": report.verdicts,
        "training_seconds": report.training_seconds,
        "seconds": time.perf_counter() - started,
    }
    throughput = None if options.quick else _throughput()
    services = start_services()
    try:
        log("recommendations: serving, in one worker process")
        serving = run_worker(
            "bench.recommendations", services, quick=options.quick, settings="bench.settings_blocks"
        )
    finally:
        services.close()
    return {
        "offline": offline,
        "serving": serving,
        "throughput": throughput,
        "database": services.database,
    }


def _throughput() -> dict:
    from . import pipeline

    log("recommendations: pipeline throughput with and without them (Online Retail replay)")
    env = pipeline.Environment("recs")
    result: dict = {}
    try:
        env.run("manage.py", "migrate", "--noinput", "-v0")
        result["setup"] = env.role("setup")
        pipeline._throughput(env, result)
    finally:
        env.close()
    return result


def rows(result: dict) -> list[tuple]:
    out = []
    for target, measured, met in result["offline"]["verdicts"]:
        out.append((target, measured, "", "", "target", verdict(met)))
    for visitor in ("consented", "refused"):
        r = result["serving"][visitor]
        out.append(
            (
                f"product page with a recommendations block, {visitor}",
                f"{r['ms']:.2f} ms",
                f"{r['base_ms']:.2f} ms",
                f"{r['ratio']:.2f}x",
                f"<= {TARGET_RENDER:.2f}x",
                verdict(r["ratio"] <= TARGET_RENDER),
            )
        )
    t = result.get("throughput")
    if t:
        from .pipeline import TARGET_RATE

        on, off = t["throughput"], t["throughput_without_recommendations"]
        rate, base = on["per_second"], off["per_second"]
        out.append(
            (
                "Pipeline throughput, Online Retail, recommendations on (events/s)",
                f"{rate:,.0f}" if rate else "n/a",
                f"{base:,.0f} without" if base else "n/a",
                f"{rate / base:.2f}x" if rate and base else "",
                f">= {TARGET_RATE:,}",
                verdict(bool(rate and rate >= TARGET_RATE)),
            )
        )
        cpu, cpu_base = on.get("cpu_per_100k"), off.get("cpu_per_100k")
        if cpu is not None and cpu_base:
            out.append(
                (
                    "  worker CPU seconds per 100k events",
                    f"{cpu:.1f} s",
                    f"{cpu_base:.1f} s without",
                    f"{cpu / cpu_base:.2f}x",
                    "",
                    "",
                )
            )
    return out


def details(result: dict) -> str:
    s = result["serving"]
    return "\n".join(
        [
            result["offline"]["table"],
            f"Offline evaluation took {result['offline']['seconds']:.0f} s.",
            f"Serving: {s['rounds']} interleaved rounds of {s['batch']} requests per scenario; "
            "medians of per-request times, ratios medians of per-round ratios. The block shows "
            f"{s['shown']} items ('bought together', filled from the co-occurrence counts).",
            _throughput_details(result.get("throughput")),
        ]
    )


def _throughput_details(t: dict | None) -> str:
    if not t:
        return "Pipeline throughput: not measured (--quick)."
    on = t["throughput"]
    return (
        f"Pipeline throughput: {on['events']:,} events of {on['visitors']:,} visitors drained "
        f"by a 2-process Celery worker, {t['recommendation_items']['items']} product pages "
        "(items); with / without is the same replay in a fresh database with recommendations "
        "off, in this run. Events/s depend on the machine's load; CPU seconds per 100k events "
        "much less."
    )


def _worker() -> None:
    import io

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.test import RequestFactory
    from django.test.client import Client

    from demo.home.models import ProductPage
    from recommendations.models import Pair, Popularity

    quick = bool(os.environ.get("BENCH_QUICK"))
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    products = list(ProductPage.objects.exclude(stock_code="").order_by("pk"))
    target = products[0]
    Pair.objects.bulk_create(
        [Pair(a=target.pk, b=p.pk, weight=100.0 - n) for n, p in enumerate(products[1:])]
    )
    Popularity.objects.bulk_create(
        [Popularity(segment="", item=p.pk, weight=100.0 - n) for n, p in enumerate(products)]
    )
    body = [("paragraph", "<p>A fine product, from our gift range.</p>")]
    pages = {}
    for slug, extra in (
        ("bench-without", []),
        (
            "bench-with",
            [
                (
                    "recommendations",
                    {"strategy": "together", "count": 4, "heading": "Bought together"},
                )
            ],
        ),
    ):
        page = ProductPage(
            title=f"Bench {slug}", slug=slug, price="1.00", stock_code="", body=[*body, *extra]
        )
        target.get_parent().add_child(instance=page)
        page.save_revision().publish()
        pages[slug] = page
    Pair.objects.bulk_create(
        [Pair(a=pages["bench-with"].pk, b=p.pk, weight=100.0 - n) for n, p in enumerate(products)]
    )

    cookies = {}
    for visitor, action in (("consented", "accept_all"), ("refused", "reject_all")):
        client = Client(HTTP_USER_AGENT=UA)
        response = client.post("/consent/", {"action": action})
        assert response.status_code == 303, response.status_code
        cookies[visitor] = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
    factory = RequestFactory()
    app = WSGIHandler()
    shown = {}

    def environ(path, visitor):
        return factory._base_environ(
            PATH_INFO=path,
            REQUEST_METHOD="GET",
            HTTP_USER_AGENT=UA,
            HTTP_ACCEPT="text/html",
            HTTP_COOKIE=cookies[visitor],
        )

    def once(env):
        e = env.copy()
        e["wsgi.input"] = io.BytesIO()
        started = time.perf_counter_ns()
        result = app(e, lambda status, headers, exc_info=None: None)
        body = b"".join(result)
        result.close()
        elapsed = time.perf_counter_ns() - started
        shown[e["PATH_INFO"]] = body.count(b"data-recommendation-item=")
        return elapsed

    scenarios = {
        f"{slug}/{visitor}": environ(pages[slug].url, visitor)
        for slug in pages
        for visitor in ("consented", "refused")
    }
    for env in scenarios.values():
        for _ in range(5):
            once(env)
    batch, rounds = (10, 8) if quick else (25, 30)
    times = {name: [] for name in scenarios}
    medians = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, env in scenarios.items():
            sample = [once(env) / 1e6 for _ in range(batch)]
            times[name] += sample
            medians[name].append(statistics.median(sample))
    result = {"rounds": rounds, "batch": batch, "shown": shown.get(pages["bench-with"].url, 0)}
    for visitor in ("consented", "refused"):
        a, b = f"bench-with/{visitor}", f"bench-without/{visitor}"
        ratios = [x / y for x, y in zip(medians[a], medians[b], strict=True)]
        result[visitor] = {
            "ms": statistics.median(times[a]),
            "base_ms": statistics.median(times[b]),
            "ratio": statistics.median(ratios),
        }
    print(json.dumps(result))


if __name__ == "__main__" and "--worker" in sys.argv:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_blocks")
    _worker()
