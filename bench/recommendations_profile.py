"""``python -m bench.recommendations_profile [--drain] [--off] [--top N] [--no-profile]``: where
the time of the drain's recommendations step goes on the Online Retail replay.

By default, **the step alone**, in this process, no services: the Online Retail lines as the
import makes them (purchases, refunds; the item code as the ``category`` property),
in batches of ``SEGMENTS_BATCH_SIZE`` in time order, each visitor's ``r:`` fields carried from
batch to batch as the fast store would, the 300 most bought stock codes as items; the database
is left out (no stored neighbours, writes of the sums timed apart). Prints the step's CPU
seconds per 100,000 events, the write's, and the ``N`` functions with the most cumulative
time (``--no-profile``: the CPU seconds only, without cProfile's overhead). Run it from two
checkouts to compare.

With ``--drain``, the whole drain: in a fresh PostgreSQL database and Redis key prefix (as
``python -m bench --only pipeline`` makes them), the bench segments, the product pages, the
file imported into the stream; then one process drains every partition under cProfile and
prints the share of the time in the recommendations step and its parts (``--off``:
recommendations off). One process and no Celery: a profile of the work, not a throughput
figure (``python -m bench --only recommendations`` gives that, with 2 worker processes).
"""

import argparse
import cProfile
import io
import pstats
import sys
import time

from .pipeline import DATA, RECOMMENDATION_ITEMS, Environment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recommendations_profile")
    parser.add_argument("--drain", action="store_true", help="the whole drain (services)")
    parser.add_argument("--off", action="store_true", help="recommendations off (--drain)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--no-profile", action="store_true", help="the step's CPU time without cProfile"
    )
    options = parser.parse_args(argv)
    if not options.drain:
        _step(options.top, profile=not options.no_profile)
        return 0
    extra = {"BENCH_RECOMMENDATIONS": "off"} if options.off else {}
    env = Environment("prof", **extra)
    try:
        print("migrating, seeding, importing the Online Retail data", file=sys.stderr)
        env.run("manage.py", "migrate", "--noinput", "-v0")
        env.role("setup")
        env.role("items", str(RECOMMENDATION_ITEMS))
        env.import_retail()
        print("draining under cProfile", file=sys.stderr)
        args = ("-m", "bench.recommendations_profile", "--drain-worker", str(options.top))
        out = env.run(*args, timeout=3600)
        sys.stdout.write(out)
    finally:
        env.close()
    return 0


def _drain(top: int) -> None:
    import django

    django.setup()
    from recommendations import buffer
    from segments.backends import get_backend
    from segments.models import LoggedEvent
    from segments.stream.drain import drain_partition

    backend = get_backend()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    while backend.pending_partitions():
        drain_partition(0, max_seconds=3600)
    buffer.flush()  # what the timer thread would write
    profiler.disable()
    seconds = time.perf_counter() - started
    events = LoggedEvent.objects.count()
    stats = pstats.Stats(profiler)
    total = stats.total_tt or 1.0
    print(f"{events} events drained in {seconds:.1f} s: {events / seconds:,.0f} events/s")
    parts = {
        "recommendations.pipeline:step": "the recommendations batch step",
        "recommendations.pipeline:_lists": "  its lists (neighbours, for you)",
        "recommendations.pipeline:_neighbours": "    neighbours",
        "recommendations.scoring:add_event": "  its increments (pairs, popularity)",
        "recommendations.buffer:add": "  gathering increments",
        "recommendations.buffer:flush": "writing the gathered sums (flush)",
        "segments.stream.drain:process_batch": "the drain's batches, in all",
    }
    for (filename, _line, name), row in stats.stats.items():
        module = filename.rsplit("/", 2)
        if len(module) < 2:  # a built-in ("~")
            continue
        label = f"{module[-2]}.{module[-1].removesuffix('.py')}:{name}"
        if label in parts:
            cumulative = row[3]
            print(f"{parts[label]:<45} {cumulative:8.2f} s  {100 * cumulative / total:5.1f} %")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def _retail_batches():
    """The Online Retail lines as the import makes them (read through the import's own preset
    mapping, keyed and validated, stored nowhere), in time order, in batches."""
    from collections import Counter

    from django.conf import settings

    from segments.api import read_visitor_events

    lines = []
    for key, events in read_visitor_events(DATA, "online-retail"):
        for name, ts, properties in events:
            if name in ("purchase", "refund") and properties.get("category"):
                lines.append((ts, key, name, properties["category"]))
    lines.sort(key=lambda line: line[0])
    bought = Counter(code for _ts, _k, name, code in lines if name == "purchase")
    codes = [code for code, _n in bought.most_common(RECOMMENDATION_ITEMS)]
    keys = {line[1]: line[1] for line in lines}
    size = int(getattr(settings, "SEGMENTS_BATCH_SIZE", 2000))
    batches = [lines[n : n + size] for n in range(0, len(lines), size)]
    return batches, codes, keys


def _step(top: int, profile: bool = True) -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from recommendations import buffer, factorisation, pipeline
    from recommendations.items import Catalogue
    from segments.extensions import BatchEvent, BatchVisitor

    batches, codes, keys = _retail_batches()
    ids = {code: 1000 + n for n, code in enumerate(codes)}
    items = Catalogue(
        allowed=frozenset(ids.values()),
        categories=dict.fromkeys(ids.values(), ""),
        external=ids,
        known=frozenset(ids.values()),
    )
    pipeline.catalogue = lambda: items
    pipeline.top_neighbours = lambda wanted, length: {}
    factorisation.active_model = lambda: None
    written = []

    def save(deltas):
        started = time.process_time()
        # What the write does in Python before the database: the rows, sorted.
        sorted(deltas.pairs.items()), sorted(deltas.popular.items())
        written.append((time.process_time() - started, len(deltas.pairs)))

    buffer.save = save
    fields: dict[str, dict] = {}
    events = sum(len(b) for b in batches)
    profiler = cProfile.Profile()
    cpu = time.process_time()
    if profile:
        profiler.enable()
    for batch in batches:
        by_visitor: dict[str, list] = {}
        for ts, customer, name, code in batch:
            by_visitor.setdefault(keys[customer], []).append(
                BatchEvent(name, ts, {"category": code, "country": "United Kingdom"})
            )
        visitors = [
            BatchVisitor(key, None, {}, evs, fields.get(key, {})) for key, evs in by_visitor.items()
        ]
        for key, change in pipeline.step(visitors, batch[-1][0]).items():
            fields.setdefault(key, {}).update(change.set)
    buffer.flush()
    profiler.disable()
    cpu = time.process_time() - cpu
    per = 100_000 / events
    write = sum(w for w, _n in written)
    print(
        f"{events:,} events in {len(batches)} batches, {len(codes)} items: the step "
        f"{(cpu - write) * per:.2f} CPU s per 100k events "
        f"({'with' if profile else 'without'} cProfile); the writes' Python "
        f"{write * per:.2f} s per 100k ({len(written)} writes, {sum(n for _w, n in written):,} "
        "pairs)"
    )
    if profile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
        print(out.getvalue())


if __name__ == "__main__":
    if "--drain-worker" in sys.argv:
        import os

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_pipeline")
        _drain(int(sys.argv[sys.argv.index("--drain-worker") + 1]))
    else:
        sys.exit(main())
