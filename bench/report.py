"""The printed report of the request-cost benchmark: the table of figures, then the details."""

import math

from . import request_cost as rc


def _ms(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f} ms"


def verdict(ok: bool | None) -> str:
    """PASS / FAIL against a target (empty for a figure without one), for every benchmark."""
    return "" if ok is None else ("PASS" if ok else "FAIL")


def _scenario(label: str, s: dict, target: str = "", ok: bool | None = None) -> tuple:
    return (
        label,
        f"{_ms(s['ms'])} ({s['added_ms']:+.2f})",
        _ms(s["base_ms"]),
        f"{s['ratio']:.2f}x",
        target,
        verdict(ok),
    )


def rows(result: dict) -> list[tuple[str, str, str, str, str, str]]:
    f = result["figures"]
    wall, cpu = f["wall"], f["cpu"]
    counts = result["counts"]
    segments = result["setup"]["segments"]
    out = [
        (
            "Page without the plugin (baseline), wall time",
            _ms(wall["baseline_ms"]),
            "",
            "1.00x",
            "",
            "",
        ),
        _scenario("Plugin, no consent (undecided: banner)", wall["undecided"]),
        _scenario("Plugin, no consent (refused)", wall["refused"]),
    ]
    # The plugin's own calls: those of the page without it (Wagtail's cache reads, with Django's
    # cache in Redis as in production) are subtracted.
    base_trips = counts["baseline"]["redis_round_trips"]
    trips = max(counts["undecided"]["redis_round_trips"], counts["refused"]["redis_round_trips"])
    trips -= base_trips
    out.append(
        (
            "  Redis calls per request added, no consent",
            f"{trips:.2f}",
            "",
            "",
            "0",
            verdict(trips <= 0),
        )
    )

    def consented(scenario: str, label: str, trips_label: str) -> None:
        c = wall[scenario]
        out.append(_scenario(label, c, f"<= {rc.TARGET_RATIO:.2f}x", c["ratio"] <= rc.TARGET_RATIO))
        out.append(_scenario("  same, CPU time of the web process", cpu[scenario]))
        if scenario == "consented-cluster":
            out.append(
                _scenario("  cluster against one Redis (consented)", wall["cluster_vs_consented"])
            )
        trips = counts[scenario]["redis_round_trips"] - base_trips
        out.append(
            (
                trips_label,
                f"{trips:.2f}",
                "",
                "",
                f"<= {rc.TARGET_ROUND_TRIPS}",
                verdict(trips <= rc.TARGET_ROUND_TRIPS),
            )
        )

    consented(
        "consented",
        f"Plugin, consented visitor, {segments} segments",
        "  Redis round trips per request added, consented",
    )
    if "consented-cluster" in wall:
        consented(
            "consented-cluster",
            f"Plugin, consented visitor, {segments} segments, Redis Cluster (3 masters)",
            "  Redis round trips per request added, consented, cluster",
        )
    if "python_answered_ms" in f:
        value = f["python_answered_ms"]
        target = f"<= {rc.TARGET_PYTHON_MS:.2f} ms"
        out.append(
            (
                "  plugin Python, request path (CPU, warm loop)",
                _ms(value),
                "",
                "",
                target,
                verdict(value <= rc.TARGET_PYTHON_MS),
            )
        )
    info = []
    if "python_warm_ms" in f:
        info.append(("    same, real round trip less a bare one's CPU", f["python_warm_ms"]))
    info.append(("  plugin pieces timed in pages, less the round trip", f["python_pieces_ms"]))
    info.append(("  added page CPU, less a bare round trip's CPU", f["python_ms"]))
    out += [(label, _ms(value), "", "", "", "") for label, value in info]
    if "experiments_added_ms" in f:
        x = result["experiments"]
        replay = x["replay"]
        value = f["experiments_python_ms"]
        out.append(
            (
                f"{x['experiments']} running experiments on a page: their Python per request "
                "(in-process, CPU)",
                f"{value * 1000:.1f} µs",
                f"{replay['without_ms'] * 1000:.1f} µs",
                "",
                f"<= {rc.TARGET_EXPERIMENTS_MS:.2f} ms",
                verdict(value <= rc.TARGET_EXPERIMENTS_MS),
            )
        )
        out.append(
            (
                "  same, as added page CPU (paired page views: noisy)",
                f"{_ms(f['experiments_added_ms'])} (± {x['added_ci95']:.2f})",
                _ms(x["without_cpu_ms"]),
                f"{x['with_cpu_ms'] / x['without_cpu_ms']:.3f}x",
                "",
                "",
            )
        )
        out.append(
            (
                "  Redis round trips per request of the plugin, with them",
                f"{f['experiments_evalsha']:.2f}",
                "",
                "",
                f"<= {rc.TARGET_ROUND_TRIPS}",
                verdict(f["experiments_evalsha"] <= rc.TARGET_ROUND_TRIPS),
            )
        )
        c, c0 = x["counted"], x["counted_without"]
        for label, added in (
            ("  Redis round trips per request added by them", f["experiments_round_trips"]),
            ("  SQL queries per request added by them (steady state)", f["experiments_queries"]),
            (
                "  their own SQL queries per process per s (besides the shared check)",
                c["experiments_queries_per_second"],
            ),
        ):
            out.append((label, f"{added:.2f}", "", "", "0", verdict(added <= 0)))
        out.append(
            (
                "  shared definitions freshness check, per process per s (with / without)",
                f"{c['checks_per_second']:.2f} / {c0['checks_per_second']:.2f}",
                "",
                "",
                "",
                "",
            )
        )
    if "wp" in wall:
        setup = result["wp_setup"]
        per = setup["rules"] // max(setup["segments"], 1)
        out.append(
            _scenario(
                f"wagtail-personalisation {setup['wagtail_personalisation']}, "
                f"{setup['segments']} segments x {per} rules",
                wall["wp"],
            )
        )
        out.append(_scenario("  same, CPU time of the web process", cpu["wp"]))
        ratio = wall["wp_vs_plugin"]
        out.append(
            (
                "Added time: wagtail-personalisation / plugin",
                f"{ratio:.0f}x",
                "",
                "",
                f">= {rc.TARGET_VS_WP:.0f}x",
                verdict(ratio >= rc.TARGET_VS_WP),
            )
        )
        out.append(("  same, CPU time", f"{cpu['wp_vs_plugin']:.0f}x", "", "", "", ""))
    else:
        out.append(("wagtail-personalisation", "not measured (see below)", "", "", "", ""))
    return out


def table(lines) -> str:
    header = ("figure", "value (added)", "baseline", "ratio", "target", "result")
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines]
    return "\n".join(out)


def details(result: dict) -> str:
    f = result["figures"]
    ready = result["ready"]
    base = ready["baseline"]
    versions = base["versions"]
    load = ", ".join(f"{x:.2f}" for x in result["load_before"])
    load_after = ", ".join(f"{x:.2f}" for x in result["load_after"])
    quick = " (--quick)" if result["quick"] else ""
    out = [
        f"Run {result['date']}, {result['cpus']} CPUs, load average {load} before and "
        f"{load_after} after; {result['seconds']:.0f} s in all{quick}.",
        f"Database: {result['database']}. Redis: {result['redis']}"
        + (f"; {result['cluster']}." if "cluster" in result else "."),
        f"Python {base['python']}, Django {versions['django']}, Wagtail {versions['wagtail']}; "
        f"page {base['path']} ({result['setup']['page_type']}) through Django's WSGI handler.",
        "",
        f"Per scenario ({result['rounds']} rounds; medians of per-batch means, wall / CPU):",
    ]
    for name, batches in result["batches_ms"].items():
        q1, q3 = rc.iqr(batches)
        count = result["counts"][name]
        redis = ", ".join(f"{k} {v:.2f}" for k, v in count["redis_commands"].items()) or "none"
        cpu = rc.median(result["batches_cpu_ms"][name])
        out.append(
            f"  {name:<12}{rc.median(batches):8.2f} / {cpu:6.2f}"
            f" ms  IQR {q1:.2f}-{q3:.2f}  {len(batches)}x{result['batch_sizes'][name]} requests"
            f"  SQL {count['db_queries']:.0f}/request  Redis: {redis}"
        )
    spread = rc.process_spread(result)
    if spread:
        out.append(
            "Processes per scenario: "
            + ", ".join(f"{n} {k}" for n, k in result["processes"].items())
            + "; each scenario's batch in a round is the mean of its processes'. Spread"
            " between the processes of one scenario (slowest median over fastest): "
            + ", ".join(f"{n} {v:.1%}" for n, v in spread.items())
            + "."
        )
    counts = result["counts"]
    if "server_scripts" in counts["consented"]:
        out.append(
            "Server-side check (INFO commandstats, EVALSHA+EVAL calls per request, all clients "
            f"of this Redis): consented {counts['consented']['server_scripts']:.2f}, undecided "
            f"{counts['undecided']['server_scripts']:.2f}, refused "
            f"{counts['refused']['server_scripts']:.2f}."
        )
    for clock in ("wall", "cpu"):
        added = []
        for name in ("undecided", "refused", "consented", "consented-cluster", "wp"):
            if name in f[clock]:
                s = f[clock][name]
                added.append(f"{name} {s['added_ms']:+.2f} ± {s['added_ci95']:.2f}")
        out.append(
            f"Added {clock} ms (median of per-round differences ± 95% interval): "
            + "; ".join(added)
            + "."
        )
    if "wp_baseline_vs_baseline" in f["wall"]:
        out.append(
            "The two baselines (plugin venv and wagtail-personalisation venv, same page and "
            f"versions) differ by {f['wall']['wp_baseline_vs_baseline']['added_ms']:+.2f} ms wall, "
            f"{f['cpu']['wp_baseline_vs_baseline']['added_ms']:+.2f} ms CPU: the noise floor."
        )
    out.append(
        f"The consented visitor is in {len(ready['consented']['segments_shown'])} segments "
        f"(listed on the page from request.segments). Plugin Python = added CPU time "
        f"{f['cpu']['consented']['added_ms']:.2f} ms - the CPU of a bare round trip "
        f"{f['bare_round_trip_cpu_ms']:.3f} ms (raw socket). Wall-clock estimate of the plugin's "
        f"Python: added wall time - the in-request round trip = "
        f"{f['python_wall_estimate_ms']:.2f} ms."
    )
    for key, title in (("breakdown", "consented"), ("breakdown_undecided", "undecided")):
        b = result[key]
        out.append("")
        out.append(
            f"Plugin pieces, {title} visitor: ms per request, wall / CPU, timed over {b['n']} "
            f"requests of {b['request_ms']:.2f} / {b['request_cpu_ms']:.2f} ms (indented: inside "
            f"the line above); all of them, each counted once, {b['plugin_ms']:.3f} / "
            f"{b['plugin_cpu_ms']:.3f} ms:"
        )
        for p in b["pieces"]:
            out.append(f"  {p['ms']:7.3f} / {p['cpu_ms']:6.3f}  {p['label']}")
    costs = result.get("redis_costs")
    if costs:
        out.append("")
        out.append(
            f"Redis from the consented process, in a tight loop (medians, wall): raw socket "
            f"PING {costs['raw_ping_ms']:.3f} ms ({costs['raw_ping_cpu_ms']:.3f} ms CPU), "
            f"redis-py PING {costs['redis_py_ping_ms']:.3f} ms, backend.exchange "
            f"{costs['backend_exchange_ms']:.3f} ms ({costs['backend_exchange_cpu_ms']:.3f} ms "
            f"CPU), segments.api.exchange {costs['api_exchange_ms']:.3f} ms (read-only, "
            f"{costs['memberships']} memberships); inside a page view the EVALSHA took "
            f"{f['round_trip_in_request_ms']:.3f} ms ({f['round_trip_cpu_ms']:.3f} ms CPU). "
            f"Server time per EVALSHA {costs['server_evalsha_ms']:.3f} ms. "
            f"Scheduling a drain (memory broker): {costs['schedule_drain_ms']:.3f} ms, at most "
            "once per partition per drain-flag TTL (an hour here)."
        )
        if "warm_answered_added_cpu_ms" in costs:
            out.append(
                f"The same loop with the round trip answered from memory (the backend's round "
                f"trip returns the reply the real call gave, no system call): "
                f"{costs['warm_answered_ms']:.3f} ms wall (+{costs['warm_answered_added_ms']:.3f}),"
                f" +{costs['warm_answered_added_cpu_ms']:.3f} ms CPU: the request path's own "
                f"Python (cookie check, page-view event, exchange call and reply, union with "
                f"context-only segments, response hook)."
            )
        if "warm_added_cpu_ms" in costs:
            out.append(
                f"Warm loop, ConsentMiddleware + PersonalizationMiddleware around a view reading "
                f"request.segments (page view recorded, one round trip) vs the bare view: "
                f"{costs['warm_plugin_ms']:.3f} vs {costs['warm_bare_ms']:.3f} ms wall "
                f"(+{costs['warm_added_ms']:.3f}), +{costs['warm_added_cpu_ms']:.3f} ms CPU; "
                f"less the bare round trip's CPU: {f['python_warm_ms']:.3f} ms of Python."
            )
        if "payload_round_trip_cpu_ms" in costs:
            out.append(
                f"The bare round trip: the {costs['payload_bytes']} bytes a consented page view "
                f"sends, over a plain socket, reply parsed by hiredis: "
                f"{costs['payload_round_trip_ms']:.3f} ms wall, "
                f"{costs['payload_round_trip_cpu_ms']:.3f} ms CPU (system calls and the "
                "loopback network stack, which runs in the sender's process); subtracted from "
                "the plugin's added CPU to give its Python."
            )
    x = result.get("experiments")
    if x:
        q1, q3 = x["added_iqr"]
        out.append("")
        out.append(
            f"Experiments: the home page for two consented visitors with the same history, one "
            f"enrolled in {x['experiments']} running experiments on it ({x['sticky_arms']} sticky "
            f"arms returned by the round trip), one with none running; {x['rounds']} rounds of "
            f"{x['n']} page views each, alternating. CPU per request {x['with_cpu_ms']:.3f} vs "
            f"{x['without_cpu_ms']:.3f} ms: added {x['added_cpu_ms']:+.3f} ms (median of "
            f"per-round differences, IQR {q1:+.3f} to {q3:+.3f}); in the decisions "
            f"{x['decide_cpu_ms']:.4f} vs {x['decide_cpu_ms_without']:.4f} ms. Same variants "
            f"shown on both sides: {'yes' if x['same_variants'] else 'NO'} ({x['variants']}). "
            f"Redis calls per request {x['redis_round_trips']:.2f} vs "
            f"{x['redis_round_trips_without']:.2f} (EVALSHA {x['evalsha']:.2f})."
        )
        replay, c, c0 = x["replay"], x["counted"], x["counted_without"]
        rq1, rq3 = replay["added_iqr"]
        out.append(
            f"Their Python, in-process: the {replay['calls']} decisions one page view makes "
            f"(captured from a real one, called again with the same request and arguments) "
            f"and the parsing of the {replay['sticky']} sticky arms its round trip returns, "
            f"{replay['iterations']:,} times per round, {replay['rounds']} rounds alternating "
            f"with none running: {replay['with_ms'] * 1000:.1f} vs "
            f"{replay['without_ms'] * 1000:.1f} µs of CPU per page view, added "
            f"{replay['added_ms'] * 1000:+.1f} µs (median of per-round differences, IQR "
            f"{rq1 * 1000:+.1f} to {rq3 * 1000:+.1f})."
        )
        out.append(
            f"Queries, counted with the {x['loaded']} experiments running for real in the "
            f"process (read from the database and kept fresh by the definitions check, not "
            f"pinned) over {c['seconds']:.1f} s ({c['n']} page views), and without them over "
            f"{c0['seconds']:.1f} s ({c0['n']}): {c['queries']:.0f} vs {c0['queries']:.0f} "
            f"per page view in steady state (the median page view; means "
            f"{c['mean_queries']:.2f} vs {c0['mean_queries']:.2f}); queries of the experiments' "
            f"own tables besides the shared check: {c['experiments_queries_per_second']:.2f} "
            f"per s. Periodic upkeep, per process and per second, not per request (it falls "
            f"on either side by chance): the definitions' freshness check (one small query, "
            f"segments and experiments together, at most every "
            f"SEGMENTS_DEFINITIONS_CHECK_SECONDS) {c['checks_per_second']:.2f} vs "
            f"{c0['checks_per_second']:.2f} per s; other periodic re-reads (the segments' full "
            f"list, the consent notice) {c['periodic_per_second']:.2f} vs "
            f"{c0['periodic_per_second']:.2f} per s."
        )
    out.append("")
    out.append("wagtail-personalisation:")
    wp = result.get("wp_setup")
    if wp:
        out.append(
            f"  {wp['wagtail_personalisation']} on Wagtail {wp['wagtail']}, Django {wp['django']}, "
            f"wagtail-modeladmin {wp['wagtail_modeladmin']} (separate venv .venv-bench-wp): "
            f"migrated in {wp['migrate_seconds']} s; {wp['segments']} segments, "
            f"{wp['rules']} rules."
        )
        out.append("  system checks: " + ("; ".join(wp["check"]) or "no issues"))
        warns = sorted(set(wp["warnings"]) | set(ready.get("wp", {}).get("warnings", [])))
        out.append("  warnings at start-up and first page view: " + ("; ".join(warns) or "none"))
        if ready.get("wp"):
            wp_versions = ready["wp"]["versions"]
            if wp_versions["wagtail"] != versions["wagtail"]:
                out.append(
                    f"  CAVEAT: Wagtail {wp_versions['wagtail']} there, {versions['wagtail']} "
                    "for the plugin."
                )
            count = result["counts"]["wp"]
            kinds = ", ".join(f"{k} {v:.0f}" for k, v in count["db_query_kinds"].items())
            out.append(
                f"  its visitor is in {len(ready['wp']['segments_shown'])} segments; "
                f"{count['db_queries']:.0f} SQL queries per page view ({kinds})."
            )
    for note in result.get("wp_notes", []):
        out.append(f"  note: {note}")
    prof = result.get("profile")
    if prof:
        out.append("")
        out.append(
            f"cProfile, consented visitor ({prof['n']} requests of {prof['total_ms']:.2f} ms under "
            f"the profiler; the plugin's own time {prof['plugin_own_ms']:.3f} ms):"
        )
        out.append("     calls   own ms   cum ms  function")
        for r in prof["by_cumulative"]:
            out.append(
                f"  {r['calls']:8.2f} {r['own_ms']:8.3f} {r['cum_ms']:8.3f}  {r['function']}"
            )
    return "\n".join(out)
