"""Benchmark "blocks": what personalised content costs to render, and behind the cache.

One worker process (``python -m bench.blocks --worker``, settings ``bench.settings_blocks``)
against real PostgreSQL and Redis, two demo pages of the same visible content:

- ``plain``: a ContentPage with 10 ordinary sections, each a heading, a paragraph, an image
  and a call to action (a button linking to a page);
- ``personalised``: the same page with 10 PersonalisedBlocks (the demo's, made of those
  blocks) whose default is that content and which each have 3 variants (behavioural, another
  behavioural, a context-only segment), each variant with its own image and call to action.

Figures, each measured side by side with its baseline in interleaved batches (round-robin),
compared round by round (median of per-round ratios), through Django's WSGI handler as a WSGI
server would call it:

1. render, for a visitor who consented (one round trip to Redis on both pages: the page view)
   and one who did not: personalised / plain, target <= 1.25;
2. cache-safe mode (``personalization.cache`` middleware, pages cache in Redis) with a warm
   cache: the personalised page / the plain page, both cache hits, target <= 1.10 ("served at
   the speed of a cached page"); and, for scale, the uncached personalised render.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

from .report import verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET_RENDER = 1.25
TARGET_CACHED = 1.10
BLOCKS = 10


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- orchestrator --------------------------------------------------------------------------
def run(options) -> dict:
    from .request_cost import run_worker, start_services

    services = start_services()
    try:
        log("blocks: migrating, seeding and measuring in one worker process")
        result = run_worker(
            "bench.blocks", services, quick=options.quick, settings="bench.settings_blocks"
        )
    finally:
        services.close()
    result["database"] = services.database
    result["redis"] = services.redis_url or "embedded backend"
    return result


def rows(result: dict) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for visitor in ("consented", "refused"):
        r = result["render"][visitor]
        out.append(
            (
                f"{BLOCKS} personalised blocks, {visitor}",
                f"{r['ms']:.2f} ms",
                f"{r['base_ms']:.2f} ms",
                f"{r['ratio']:.2f}x",
                f"<= {TARGET_RENDER:.2f}x",
                verdict(r["ratio"] <= TARGET_RENDER),
            )
        )
    for visitor in ("consented", "refused"):
        c = result["cached"][visitor]
        out.append(
            (
                f"cache-safe hit, personalised, {visitor}",
                f"{c['ms']:.2f} ms",
                f"{c['base_ms']:.2f} ms",
                f"{c['ratio']:.2f}x",
                f"<= {TARGET_CACHED:.2f}x",
                verdict(c["ratio"] <= TARGET_CACHED),
            )
        )
        out.append(
            (
                "  same page uncached (for scale)",
                f"{c['uncached_ms']:.2f} ms",
                "",
                f"{c['uncached_ms'] / c['ms']:.1f}x hit",
                "",
                "",
            )
        )
    return out


def details(result: dict) -> str:
    return "\n".join(
        [
            f"Database: {result['database']}; Redis: {result['redis']}.",
            f"Rounds: {result['rounds']} interleaved batches of {result['batch']} requests per "
            "scenario; figures are medians of per-request times, ratios medians of per-round "
            "ratios.",
            f"Hit/miss headers during the cached rounds: {result['cache_status']}.",
            "Plain page: 10 sections of a heading, a paragraph, an image and a call to action "
            "(a page link); personalised page: the same content as the default of 10 "
            "PersonalisedBlocks made of those blocks, with 3 variants each (engaged, regular, a "
            "context-only 'mobile' segment), each with its own image and call to action; "
            "visitors are in none of them, so both pages show the same content.",
        ]
    )


# --- worker ----------------------------------------------------------------------------------
def _worker() -> None:
    import io

    import django

    django.setup()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.test import RequestFactory, override_settings
    from django.test.client import Client

    from demo.home.images import banner_image
    from demo.home.models import ContentPage, HomePage
    from segments.api import segment_model

    quick = bool(os.environ.get("BENCH_QUICK"))
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    segment_model().objects.update_or_create(
        slug="mobile",
        defaults={
            "name": "Mobile",
            "rule": {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"},
        },
    )
    home = HomePage.objects.get()
    guides = ContentPage.objects.get(slug="guides")
    everyone = banner_image("Bench: everyone", "#0f3d3e")
    pictures = {
        slug: banner_image(f"Bench: {slug}", colour)
        for slug, colour in (("engaged", "#8a3b12"), ("regular", "#3b128a"), ("mobile", "#128a3b"))
    }

    def section(n, picture, heading_suffix=""):
        return [
            ("heading", f"Section {n}{heading_suffix}"),
            ("paragraph", f"<p>Paragraph {n}: how to choose, care for and repair.</p>"),
            ("image", picture),
            ("call_to_action", {"text": f"Read guide {n}", "page": guides, "url": ""}),
        ]

    plain_body, personalised_body = [], []
    for n in range(BLOCKS):
        plain_body += section(n, everyone)
        personalised_body.append(
            (
                "personalised",
                {
                    "default": section(n, everyone),
                    "variants": [
                        {
                            "label": f"For {slug}",
                            "segments": [slug],
                            "match": "any",
                            "content": section(n, picture, f" for {slug}"),
                        }
                        for slug, picture in pictures.items()
                    ],
                },
            )
        )
    for slug, body in (("bench-plain", plain_body), ("bench-personalised", personalised_body)):
        page = ContentPage(title="Bench", slug=slug, body=body)
        home.add_child(instance=page)
        page.save_revision().publish()

    # Visitors: one who accepted everything, one who rejected everything.
    cookies = {}
    for visitor, action in (("consented", "accept_all"), ("refused", "reject_all")):
        client = Client(HTTP_USER_AGENT=UA)
        response = client.post("/consent/", {"action": action})
        assert response.status_code == 303, response.status_code
        cookies[visitor] = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())

    factory = RequestFactory()

    def environ(path, visitor):
        env = factory._base_environ(
            PATH_INFO=path,
            REQUEST_METHOD="GET",
            HTTP_USER_AGENT=UA,
            HTTP_ACCEPT="text/html",
            HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8",
            HTTP_COOKIE=cookies[visitor],
        )
        return env

    statuses: dict[str, int] = {}

    def handler_runner(app):
        def start_response(status, headers, exc_info=None):
            if not status.startswith("200"):
                raise RuntimeError(f"status {status}")
            for name, value in headers:
                if name == "X-Tailored-Cache":
                    statuses[value] = statuses.get(value, 0) + 1

        def once(env):
            e = env.copy()
            e["wsgi.input"] = io.BytesIO()
            started = time.perf_counter_ns()
            result = app(e, start_response)
            b"".join(result)
            result.close()
            return time.perf_counter_ns() - started

        return once

    plain_app = handler_runner(WSGIHandler())
    with override_settings(MIDDLEWARE=settings.CACHE_SAFE_MIDDLEWARE):
        cached_app = handler_runner(WSGIHandler())

    batch = 10 if quick else 25
    rounds = 8 if quick else 30
    scenarios = {}
    for visitor in ("consented", "refused"):
        scenarios[f"plain/{visitor}"] = (plain_app, environ("/bench-plain/", visitor))
        scenarios[f"personalised/{visitor}"] = (
            plain_app,
            environ("/bench-personalised/", visitor),
        )
        scenarios[f"cached-plain/{visitor}"] = (cached_app, environ("/bench-plain/", visitor))
        scenarios[f"cached-personalised/{visitor}"] = (
            cached_app,
            environ("/bench-personalised/", visitor),
        )
    for app, env in scenarios.values():  # warm up: imports, templates, the learned segments
        for _ in range(5):
            app(env)
    statuses.clear()
    times = {name: [] for name in scenarios}
    round_medians = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, (app, env) in scenarios.items():
            sample = [app(env) / 1e6 for _ in range(batch)]
            times[name] += sample
            round_medians[name].append(statistics.median(sample))

    def paired(name, base):
        ratios = [a / b for a, b in zip(round_medians[name], round_medians[base], strict=True)]
        return {
            "ms": statistics.median(times[name]),
            "base_ms": statistics.median(times[base]),
            "ratio": statistics.median(ratios),
        }

    result = {"render": {}, "cached": {}, "rounds": rounds, "batch": batch}
    for visitor in ("consented", "refused"):
        result["render"][visitor] = paired(f"personalised/{visitor}", f"plain/{visitor}")
        cached = paired(f"cached-personalised/{visitor}", f"cached-plain/{visitor}")
        cached["uncached_ms"] = statistics.median(times[f"personalised/{visitor}"])
        result["cached"][visitor] = cached
    result["cache_status"] = dict(statuses)
    print(json.dumps(result))


UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


if __name__ == "__main__" and "--worker" in sys.argv:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_blocks")
    _worker()
