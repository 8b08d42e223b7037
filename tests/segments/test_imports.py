"""Imports: idempotent by content, the durable log and the profiles agreeing after any sequence
of imports, re-imports, rebuilds and retention; --as-of; processing without beat; --mapping for
any column names; unstorable rows reported per row (issue #12)."""

import csv
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.api import external_key, notice_version
from segments import events
from segments.api import mirror_consent, read_visitor_events
from segments.events import log as eventlog
from segments.events.importer import PRESETS, ImportFileError, load_mapping
from segments.models import LoggedEvent
from segments.stream import drain as pipeline

pytestmark = [pytest.mark.services, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
# Explicit column options (what every version of the command understands).
RETAIL = [
    "--visitor",
    "CustomerID",
    "--time",
    "InvoiceDate",
    "--value",
    "UnitPrice",
    "--quantity",
    "Quantity",
    "--prop",
    "category=StockCode",
    "--prop",
    "order_id=InvoiceNo",
    "--source",
    "shop",
    "--assume-consent",
]
DAY = timedelta(days=1)
START = datetime.now(UTC).replace(microsecond=0) - 20 * DAY  # inside the retention window


def _line(invoice, item, quantity, at, price, customer):
    return {
        "InvoiceNo": invoice,
        "StockCode": item,
        "Quantity": quantity,
        "InvoiceDate": at.isoformat(),
        "UnitPrice": price,
        "CustomerID": customer,
    }


def _lines():
    """c1 buys twelve lines in four orders (more than the eight ids a profile remembers), c2
    three; two of c2's lines are genuinely identical (the same item twice on one invoice)."""
    rows = []
    for order in range(4):
        at = START + order * DAY
        for n in range(3):
            rows.append(_line(f"5{order}0", f"A{n}", 1 + n, at, f"{2 + n}.50", "c1"))
    at = START + 5 * DAY
    rows.append(_line("600", "B1", 2, at, "1.25", "c2"))
    rows.append(_line("600", "B1", 2, at, "1.25", "c2"))
    rows.append(_line("600", "B2", 1, at, "9.00", "c2"))
    return rows


def _write(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _import(path, *extra, options=RETAIL):
    out = io.StringIO()
    call_command("import_events", str(path), *options, *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _profile(backend, customer, source="shop"):
    raw = backend.visitor_data(external_key(source, customer)).profile
    return json.loads(raw) if raw else None


def _summary(data):
    """What must agree between a stored profile and one recomputed from the log."""
    return {part: data.get(part) for part in ("t", "o", "b", "lt", "f", "l")}


def _assert_profiles_match_the_log(backend):
    keys = list(LoggedEvent.objects.values_list("visitor_key", flat=True).distinct())
    replayed, _ = eventlog.replay(keys)
    now = time.time()
    for key in keys:
        stored = json.loads(backend.visitor_data(key).profile)
        replayed[key].prune(now)
        assert _summary(stored) == _summary(replayed[key].to_dict()), key
        assert sum(stored["t"].values()) == LoggedEvent.objects.filter(visitor_key=key).count()


# -- idempotent by content --------------------------------------------------------------------


def test_a_second_file_under_the_same_source_is_logged_whole(backend, tmp_path):
    rows = _lines()
    _import(_write(tmp_path / "january.csv", rows[:6] + rows[12:]), "--process")
    _import(_write(tmp_path / "february.csv", rows[6:12]), "--process")
    assert LoggedEvent.objects.count() == len(rows)
    assert _profile(backend, "c1")["t"] == {"purchase": 12}
    _assert_profiles_match_the_log(backend)


def test_importing_the_same_file_twice_changes_nothing(backend, tmp_path):
    path = _write(tmp_path / "orders.csv", _lines())
    _import(path, "--process")
    first = _profile(backend, "c1")
    assert first["t"] == {"purchase": 12} and first["o"] == [4, 92.0]
    _import(path, "--process")
    assert LoggedEvent.objects.count() == len(_lines())
    assert _profile(backend, "c1")["t"] == first["t"]
    assert _profile(backend, "c1")["o"] == first["o"]  # no inflated orders or revenue
    _assert_profiles_match_the_log(backend)


def test_the_same_rows_in_another_order_and_file_add_nothing(backend, tmp_path):
    rows = _lines()
    _import(_write(tmp_path / "orders.csv", rows), "--process")
    before = {c: _profile(backend, c) for c in ("c1", "c2")}
    shuffled = rows[:]
    random.Random(12).shuffle(shuffled)
    _import(_write(tmp_path / "export-2.csv", shuffled), "--process")
    _import(_write(tmp_path / "part.csv", rows[3:9]), "--process")
    assert LoggedEvent.objects.count() == len(rows)
    for customer in ("c1", "c2"):
        assert _summary(_profile(backend, customer)) == _summary(before[customer])
    _assert_profiles_match_the_log(backend)


def test_identical_rows_of_one_file_stay_distinct_events(backend, tmp_path):
    path = _write(tmp_path / "orders.csv", _lines())
    _import(path, "--process")
    _import(path, "--process")
    key = external_key("shop", "c2")
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 3  # two identical B1 lines
    assert _profile(backend, "c2")["t"] == {"purchase": 3}


def test_after_any_imports_a_rebuild_gives_the_same_profiles(backend, tmp_path):
    rows = _lines()
    _import(_write(tmp_path / "a.csv", rows[:8]), "--process")
    _import(_write(tmp_path / "b.csv", rows), "--process")
    _import(_write(tmp_path / "a.csv", rows[:8]), "--process")
    before = {c: _summary(_profile(backend, c)) for c in ("c1", "c2")}
    _assert_profiles_match_the_log(backend)
    call_command("rebuild_fast_store", stdout=io.StringIO())
    assert {c: _summary(_profile(backend, c)) for c in ("c1", "c2")} == before
    _assert_profiles_match_the_log(backend)


KEY = "0123456789abcdef0123456789abcdef"


def test_an_event_id_seen_many_times_counts_once_in_the_drain(backend):
    """However many copies of an event reach the stream, and however far apart (a profile
    remembers only its last eight ids), the log and the profile count it once."""
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    now = time.time()
    twin = events.Event(visitor_key=KEY, name="purchase", ts=now, properties={"value": 5.0})
    for n in range(12):
        other = events.Event(visitor_key=KEY, name="page_view", ts=now + n)
        backend.append_events(partition, [events.encode(twin), events.encode(other)])
        if n % 4 == 3:
            pipeline.drain_partition(partition)
    pipeline.drain_partition(partition)
    profile = json.loads(backend.visitor_data(KEY).profile)
    assert profile["t"] == {"purchase": 1, "page_view": 12}
    assert profile["o"] == [1, 5.0]
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 13


def test_a_lost_profile_is_recomputed_from_the_log_when_the_visitor_returns(backend):
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    for n in range(3):
        event = events.Event(visitor_key=KEY, name="page_view", ts=time.time() - 60 + n)
        backend.append_events(partition, [events.encode(event)])
    pipeline.drain_partition(partition)
    backend.client.delete(f"{backend.prefix}:f:{KEY}")  # the profile alone is lost
    assert backend.visitor_data(KEY).profile is None
    backend.append_events(partition, [events.encode(events.Event(KEY, "page_view", time.time()))])
    pipeline.drain_partition(partition)
    assert json.loads(backend.visitor_data(KEY).profile)["t"] == {"page_view": 4}


# -- processing, --as-of, retention -----------------------------------------------------------


def test_an_import_is_processed_without_beat_or_process(backend, tmp_path):
    out = _import(_write(tmp_path / "orders.csv", _lines()))
    assert LoggedEvent.objects.count() == len(_lines())
    assert not backend.pending_partitions()
    assert "15 events processed" in out


def test_no_process_hands_the_import_to_the_workers_at_once(backend, tmp_path):
    # Tasks run eagerly in the tests: a scheduled drain runs now, not at beat's next sweep.
    out = _import(_write(tmp_path / "orders.csv", _lines()), "--no-process")
    assert "drains scheduled" in out
    assert LoggedEvent.objects.count() == len(_lines())
    assert not backend.pending_partitions()


def test_as_of_leaves_out_later_rows_and_refuses_rows_past_retention(backend, tmp_path):
    as_of = datetime(2011, 12, 10, tzinfo=UTC)
    rows = [
        _line("1", "A", 1, as_of - 10 * DAY, "1.00", "c1"),
        _line("2", "A", 1, as_of - 394 * DAY, "1.00", "c1"),
        _line("3", "A", 1, as_of - 396 * DAY, "1.00", "c1"),  # past the 395-day window
        _line("4", "A", 1, as_of - 500 * DAY, "1.00", "c2"),
        _line("5", "A", 1, as_of + DAY, "1.00", "c1"),  # after the as-of day
    ]
    out = _import(_write(tmp_path / "old.csv", rows), "--as-of", "2011-12-10")
    assert "2 rows older than the 395-day retention window refused" in out
    assert "1 rows after the as-of time left out" in out
    logged = sorted(e.occurred_at for e in LoggedEvent.objects.all())
    assert logged == [as_of - 394 * DAY, as_of - 10 * DAY]
    assert _profile(backend, "c1")["t"] == {"purchase": 2}
    assert _profile(backend, "c2") is None
    # The same rows as of now: all of them are past the window.
    out = _import(_write(tmp_path / "old.csv", rows))
    assert "5 rows older than the 395-day retention window refused" in out
    with pytest.raises(CommandError, match="--as-of"):
        _import(tmp_path / "old.csv", "--as-of", "last tuesday")


def test_retention_recomputes_the_profiles_of_the_visitors_it_purged(backend):
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    partition = backend.partition_for(KEY)
    now = time.time()
    for ts, name in ((now - 400 * 86400, "purchase"), (now - 399 * 86400, "purchase")):
        backend.append_events(
            partition, [events.encode(events.Event(KEY, name, ts, properties={"value": 10.0}))]
        )
    for n in range(2):
        backend.append_events(partition, [events.encode(events.Event(KEY, "page_view", now - n))])
    pipeline.drain_partition(partition)
    profile = json.loads(backend.visitor_data(KEY).profile)
    assert profile["t"] == {"purchase": 2, "page_view": 2} and profile["o"] == [2, 20.0]
    out = io.StringIO()
    call_command("privacy_retention", stdout=out)
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 2
    profile = json.loads(backend.visitor_data(KEY).profile)
    assert profile["t"] == {"page_view": 2}
    assert "o" not in profile  # no purchase left in the log: none in the profile
    _assert_profiles_match_the_log(backend)


# -- --mapping ---------------------------------------------------------------------------------

OTHER = [
    {"kunde": "k-17", "zeit": "2011-11-02 10:00:00", "betrag": "3.50", "menge": "2", "art": "X1"},
    {"kunde": "k-17", "zeit": "2011-11-03 11:00:00", "betrag": "1.00", "menge": "1", "art": "X2"},
    {"kunde": "k-18", "zeit": "2011-11-04 12:00:00", "betrag": "4.00", "menge": "-1", "art": "X1"},
]
OTHER_MAPPING = {
    "visitor": "kunde",
    "time": "zeit",
    "timezone": "Europe/Berlin",
    "event": "purchase",
    "price": "betrag",
    "quantity": "menge",
    "properties": {"category": "art"},
    "source": "erp",
}


def _other_file(tmp_path):
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(OTHER[0]))
        writer.writeheader()
        writer.writerows(OTHER)
    return path


@pytest.mark.parametrize("form", ["inline", "file"])
def test_a_mapping_names_any_columns(backend, tmp_path, form):
    spec = json.dumps(OTHER_MAPPING)
    if form == "file":
        (tmp_path / "mapping.json").write_text(spec)
        spec = str(tmp_path / "mapping.json")
    out = io.StringIO()
    call_command(
        "import_events",
        str(_other_file(tmp_path)),
        "--mapping",
        spec,
        "--as-of",
        "2011-12-10",
        "--assume-consent",
        stdout=out,
    )
    assert "3 events queued for 2 visitors" in out.getvalue()
    profile = _profile(backend, "k-17", source="erp")
    assert profile["t"] == {"purchase": 2} and profile["o"] == [2, 8.0]
    assert _profile(backend, "k-18", source="erp")["t"] == {"refund": 1}
    first = LoggedEvent.objects.order_by("occurred_at").first()
    assert first.occurred_at == datetime(2011, 11, 2, 9, tzinfo=UTC)  # Berlin time
    assert first.properties == {"category": "X1", "value": 7.0, "quantity": 2.0}


def test_segments_ml_eval_reads_files_through_a_mapping(tmp_path):
    """segments_ml_eval reads its file with read_visitor_events(path, --mapping)."""
    source = read_visitor_events(_other_file(tmp_path), json.dumps(OTHER_MAPPING))
    by_key = dict(source)
    assert [name for name, _ts, _p in by_key[external_key("erp", "k-17")]] == [
        "purchase",
        "purchase",
    ]
    assert by_key[external_key("erp", "k-18")][0][0] == "refund"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"visitor": "a"}', "needs the column"),
        ('{"visitor": "a", "time": "b", "colour": "c"}', "Unknown mapping key"),
        ('{"visitor": "a", "time": "b", "timezone": "Mars/Base"}', "Unknown time zone"),
        ('{"visitor": "a", "time": "b", "event": "Bad Name"}', "Invalid event name"),
        ("{not json", "not JSON"),
        ("no-such-preset", "No mapping"),
    ],
)
def test_a_bad_mapping_is_refused_with_its_reason(tmp_path, spec, message):
    with pytest.raises(ImportFileError, match=message):
        load_mapping(spec)
    with pytest.raises(CommandError, match=message):
        call_command("import_events", str(_other_file(tmp_path)), "--mapping", spec)


def test_the_online_retail_columns_are_named_once_in_the_preset():
    assert load_mapping("online-retail") == PRESETS["online-retail"]
    assert load_mapping("online-retail") is not PRESETS["online-retail"]
    named = []
    for app in ("segments", "segments_ml", "bench", "demo", "consent", "personalization"):
        for path in (ROOT / app).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if any(column in text for column in ("InvoiceNo", "CustomerID", "StockCode")):
                named.append(str(path.relative_to(ROOT)))
    assert named == ["segments/events/importer.py"]


# -- rows the log cannot store -----------------------------------------------------------------


def test_unstorable_rows_are_reported_per_row_and_the_rest_imported(backend, tmp_path):
    at = (START + DAY).isoformat()
    rows = [
        {"who": "a1", "at": at, "note": "fine"},
        {"who": "a2", "at": at, "note": "nul \u0000 inside"},
        {"who": "a3", "at": at, "note": "lone \ud800 surrogate"},
        {"who": "a4", "at": "nan", "note": "x"},
        {"who": "a5", "at": "1e300", "note": "x"},
        {"who": "a6", "at": at, "note": "x", "price": "inf"},
        {"who": "a7", "at": at, "note": "mail bob@example.com"},
        {"who": "a8", "at": at, "note": "+44 20 7946 0958 at 203.0.113.9 or 2001:db8::1"},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_events",
        str(path),
        "--visitor",
        "who",
        "--time",
        "at",
        "--event-name",
        "signup",
        "--value",
        "price",
        "--prop",
        "note=note",
        "--assume-consent",
        "--process",
        stdout=out,
        stderr=err,
    )
    errors = err.getvalue()
    assert "3 events queued" in out.getvalue() and "5 rows skipped" in out.getvalue()
    assert "row 2: Property 'note' contains a NUL character" in errors
    assert "row 3: Property 'note' is not valid Unicode text" in errors
    for n in (4, 5, 6):
        assert f"row {n}:" in errors
    assert sorted(e.properties["note"] for e in LoggedEvent.objects.all()) == [
        "[phone] at [ip] or [ip]",
        "fine",
        "mail [email]",
    ]
    assert not backend.pending_partitions()


def test_a_file_unreadable_past_the_first_batch_writes_nothing(backend, tmp_path):
    at = (START + DAY).isoformat()
    good = "".join(json.dumps({"who": f"v{n % 50}", "at": at}) + "\n" for n in range(5100))
    path = tmp_path / "broken.jsonl"
    path.write_text(good + "[1, 2]\n")
    with pytest.raises(CommandError, match="line 5101: not a JSON object"):
        _import(path, options=["--visitor", "who", "--time", "at", "--assume-consent"])
    path = tmp_path / "broken.csv"
    path.write_bytes(
        b"who,at\n" + b"".join(b"v1,%s\n" % at.encode() for _ in range(6000)) + b"\xff\n"
    )
    with pytest.raises(CommandError, match="not UTF-8"):
        _import(path, options=["--visitor", "who", "--time", "at", "--assume-consent"])
    assert not backend.pending_partitions()
    assert LoggedEvent.objects.count() == 0


def test_a_csv_without_a_mapped_column_is_refused_before_anything_is_queued(backend, tmp_path):
    options = ["--visitor", "CustomerID", "--time", "InvoiceDate", "--value", "Price"]
    with pytest.raises(CommandError, match="No column 'Price' in the file"):
        _import(_write(tmp_path / "orders.csv", _lines()), options=options)
    assert not backend.pending_partitions()


def test_any_sequence_of_imports_rebuilds_and_purges_keeps_profiles_equal_to_the_log(
    backend, tmp_path
):
    """Property: whatever files (subsets of the same export, in any order, repeated) are
    imported, with rebuilds and retention purges in between (a purge with a window that
    leaves out the oldest orders, after which imports refuse those rows, or the default
    window again), the log holds each distinct row once, exactly the rows inside the window
    at their import and not purged since, and every profile equals its recomputation from
    the log."""
    from django.test import override_settings
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rows = _lines()
    # Rows lie 20, 19, 18, 17 and 15 days back: a 16-day window purges c1's orders and keeps
    # c2's, with no row near the edge; 395 days is the default.
    step = st.one_of(
        st.tuples(st.just("import"), st.lists(st.integers(0, len(rows) - 1), min_size=1)),
        st.tuples(st.just("rebuild"), st.just([])),
        st.tuples(st.just("purge"), st.sampled_from([16, 395])),
    )

    def inside(row, days: int) -> bool:
        at = datetime.fromisoformat(row["InvoiceDate"])
        return at >= datetime.now(UTC) - timedelta(days=days)

    @settings(
        max_examples=16,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(step, min_size=1, max_size=5))
    def run(steps):
        LoggedEvent.objects.all().delete()
        backend.flush()
        days = 395
        logged: dict[str, tuple[dict, int]] = {}  # each distinct row: (row, copies in the log)
        for n, (action, arg) in enumerate(steps):
            if action == "rebuild":
                call_command("rebuild_fast_store", stdout=io.StringIO())
                continue
            if action == "purge":
                days = arg
                with override_settings(SEGMENTS_EVENT_RETENTION_DAYS=days):
                    call_command("privacy_retention", stdout=io.StringIO())
                logged = {c: (r, k) for c, (r, k) in logged.items() if inside(r, days)}
                continue
            # A file of these rows, in the order picked (an export holds each line once; rows
            # 12 and 13 are identical lines).
            chosen = [rows[i] for i in dict.fromkeys(arg)]
            with override_settings(SEGMENTS_EVENT_RETENTION_DAYS=days):
                _import(_write(tmp_path / f"file-{n}.csv", chosen))
            copies: dict[str, tuple[dict, int]] = {}
            for row in chosen:
                content = json.dumps(row, sort_keys=True)
                copies[content] = (row, copies.get(content, (row, 0))[1] + 1)
            for content, (row, count) in copies.items():
                if inside(row, days):  # older rows are refused (docs/imports.md)
                    logged[content] = (row, max(logged.get(content, (row, 0))[1], count))
        assert LoggedEvent.objects.count() == sum(k for _r, k in logged.values())
        _assert_profiles_match_the_log(backend)

    run()


def test_the_logs_conflict_path_inside_one_transaction_logs_only_its_own_rows(db):
    """Rows staged by an earlier write in the same transaction are never logged again."""
    at = datetime.now(UTC)
    first = [(f"{n:032x}", KEY, "click", at, {}) for n in range(1, 4)]
    assert eventlog.write(first) == {r[0] for r in first}
    assert eventlog.write([*first[:1], ("f" * 32, KEY, "click", at, {})]) == {"f" * 32}
    LoggedEvent.objects.all().delete()  # (say, erased meanwhile)
    again = [("e" * 32, KEY, "click", at, {})]
    eventlog.write(again)
    assert eventlog.write([*again, ("d" * 32, KEY, "click", at, {})]) == {"d" * 32}
    assert sorted(e.hex for e in LoggedEvent.objects.values_list("pk", flat=True)) == [
        "d" * 32,
        "e" * 32,
    ]


def test_a_late_backfill_gives_the_features_of_the_events_in_time_order(backend, tmp_path):
    """An order's lines split across files around a later order count as one order, as a
    rebuild (time order) counts them: a profile receiving older events is recomputed."""
    rows = _lines()
    for n, pick in enumerate((0, 3, 1)):  # order 500, then 510 (a day later), then 500 again
        _import(_write(tmp_path / f"part-{n}.csv", [rows[pick]]), "--process")
    assert _profile(backend, "c1")["o"][0] == 2
    _assert_profiles_match_the_log(backend)


def test_consent_for_an_imports_visitors_is_recorded_mirrored_and_checked_per_batch(
    backend, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    """``--assume-consent`` records one decision for many visitors: the fast store's mirror and
    the channels' look for removals to send work on the batch, not once per visitor (they were
    17 of an import's 24 seconds for 1,664 visitors, several queries each)."""
    from consent.api import grant_imported, visitor_key
    from segments.models import PendingConsentMirror

    keys = [visitor_key(f"batch-{n}") for n in range(300)]
    with (
        django_assert_max_num_queries(40),  # was about 7 per visitor
        django_capture_on_commit_callbacks(execute=True),
    ):
        grant_imported(keys, frozenset({"personalization"}))
    assert not PendingConsentMirror.objects.exists()
    for key in keys:
        assert backend.visitor_data(key).fields.get("_nv") == notice_version(), key[:8]
        assert backend.exchange(
            key, purpose="personalization", notice_version=notice_version(), now=time.time()
        ).consented
