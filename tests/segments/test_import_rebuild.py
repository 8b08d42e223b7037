"""Backfilling from exports, rebuilding the fast store from the durable log, and context-only
segments decided inside the request."""

import csv
import gzip
import io
import json
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.api import external_key
from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site, segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

# ../shared/data beside the project (TAILORED_SHARED_DATA points elsewhere, e.g. from a git
# worktree).
DATA = (
    Path(os.environ.get("TAILORED_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared")
    / "data"
    / "online_retail"
    / "online_retail.csv.gz"
)


@pytest.fixture
def retail_sample(tmp_path):
    """The first 400 lines of the shared Online Retail data, cut at run time."""
    if not DATA.exists():
        pytest.skip("shared data not present")
    out = tmp_path / "retail.csv"
    with gzip.open(DATA, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            if n > 400:
                break
            dst.write(line)
    return out


def _import(path, *extra):
    out = io.StringIO()
    call_command(
        "import_events",
        str(path),
        "--mapping",
        "online-retail",
        "--as-of",
        "2011-12-10",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_import_without_consent_records_nothing(backend, retail_sample):
    out = _import(retail_sample)
    assert "0 events queued" in out
    assert LoggedEvent.objects.count() == 0
    assert not backend.pending_partitions()


def test_import_with_consent_obtained_elsewhere(backend, retail_sample):
    segment("buyer", {"type": "feature", "feature": "purchase_count", "op": "gte", "value": 1})
    out = _import(retail_sample, "--assume-consent")
    rows = list(csv.DictReader(retail_sample.open()))
    customers = {r["CustomerID"] for r in rows if r["CustomerID"]}
    lines = [r for r in rows if r["CustomerID"]]
    assert f"{len(lines)} events queued for {len(customers)} visitors" in out
    assert LoggedEvent.objects.count() == len(lines)
    assert ConsentRecord.objects.filter(method="api").count() == len(customers)
    # The raw customer number is never stored: only its keyed hash.
    key = external_key("online-retail", "17850")
    assert not LoggedEvent.objects.filter(visitor_key="17850").exists()
    first = [r for r in lines if r["CustomerID"] == "17850"]
    invoices = {r["InvoiceNo"] for r in first}
    profile = json.loads(backend.visitor_data(key).profile)
    assert profile["o"][0] == len(invoices)  # lines of one invoice count as one order
    assert profile["o"][1] == pytest.approx(
        sum(float(r["UnitPrice"]) * float(r["Quantity"]) for r in first), rel=1e-3
    )
    # Importing the same file again adds no duplicate rows to the log.
    _import(retail_sample, "--assume-consent")
    assert LoggedEvent.objects.count() == len(lines)


def test_bad_rows_are_reported_and_skipped(backend, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"who": "a1", "at": "2026-01-01T10:00:00", "what": "signup"}\n'
        '{"who": "a2", "at": "not a date", "what": "signup"}\n'
        '{"who": "a3", "at": "2026-01-01T10:00:00", "what": "Bad Name"}\n'
    )
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_events",
        str(path),
        "--visitor",
        "who",
        "--time",
        "at",
        "--event-column",
        "what",
        "--assume-consent",
        stdout=out,
        stderr=err,
    )
    assert "1 events queued" in out.getvalue()
    assert "row 2" in err.getvalue() and "row 3" in err.getvalue()
    with pytest.raises(CommandError):
        call_command(
            "import_events", str(tmp_path / "missing.csv"), "--visitor", "x", "--time", "y"
        )
    with pytest.raises(CommandError):
        call_command(
            "import_events", str(path), "--visitor", "who", "--time", "at", "--prop", "bad"
        )


def test_rebuild_restores_features_and_memberships_from_the_log(backend, retail_sample):
    segment("buyer", {"type": "feature", "feature": "purchase_count", "op": "gte", "value": 1})
    _import(retail_sample, "--assume-consent")
    key = external_key("online-retail", "17850")
    before = json.loads(backend.visitor_data(key).profile)
    members = backend.segment_sizes()["buyer"]
    backend.flush()  # Redis lost everything
    call_command("rebuild_fast_store", stdout=io.StringIO())
    after = json.loads(backend.visitor_data(key).profile)
    assert after["t"] == before["t"] and after["o"] == before["o"]
    assert backend.segment_sizes()["buyer"] == members
    assert backend.visitor_data(key).fields["_c:personalization"]  # consent mirror restored


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_context_only_segments_work_without_consent_and_store_nothing(backend):
    demo_site()
    segment(
        "spring-campaign",
        {"type": "context", "attribute": "utm_campaign", "op": "eq", "value": "spring"},
    )
    segment("mobile", {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"})
    visitor = browser()
    page = visitor.get("/guides/?utm_campaign=spring").content.decode()
    assert "<b>spring-campaign</b>" in page and "<b>mobile</b>" not in page
    assert "spring-campaign" not in visitor.get("/guides/").content.decode()  # forgotten
    phone = browser()
    phone.defaults["HTTP_USER_AGENT"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"
    assert "<b>mobile</b>" in phone.get("/").content.decode()
    assert backend.client.keys(f"{backend.prefix}:*") == []
    # With consent, context segments join the stored ones.
    consenting = consenting_browser()
    assert "<b>spring-campaign</b>" in consenting.get("/?utm_campaign=spring").content.decode()
