"""The privacy officer's screens in the Wagtail admin: permissions, the consent log and its
export, the decisions chart, chain verification, data-subject requests and the record of
processing."""

import csv
import io
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent import registry
from consent.actions import record_decision
from consent.api import RetentionPeriod
from consent.models import ConsentRecord, ConsentTally, ErasureRequest
from consent.policy import UNDECIDED
from consent.processing import processing_record
from segments.models import LoggedEvent

pytestmark = [pytest.mark.django_db]

SCREENS = [
    "log",
    "log_results",
    "decisions",
    "decisions_results",
    "verify",
    "requests",
    "processing",
]
XSS = '"><script>alert(1)</script>'


def _url(name: str) -> str:
    return reverse(f"consent_privacy:{name}")


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _login(username: str, *, group_perms=(), user_perms=(), **fields) -> Client:
    user = get_user_model().objects.create_user(username, password="x", **fields)
    if group_perms:
        group = Group.objects.create(name=f"{username} group")
        group.permissions.add(*(_permission(p) for p in group_perms))
        user.groups.add(group)
    user.user_permissions.add(*(_permission(p) for p in user_perms))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def officer() -> Client:
    """Staff with Wagtail admin access (through a group) and the privacy permission only."""
    return _login(
        "officer",
        is_staff=True,
        group_perms=["wagtailadmin.access_admin"],
        user_perms=["consent.view_consent_log"],
    )


@pytest.fixture
def editor() -> Client:
    """Staff with Wagtail admin access but without the privacy permission."""
    return _login("editor", is_staff=True, user_perms=["wagtailadmin.access_admin"])


def _seqs(response) -> list[int]:
    assert response.status_code == 200
    return sorted(r.seq for r in response.context["object_list"])


@pytest.fixture
def records():
    """Three visitors: A accepts all then withdraws, B grants analytics only."""
    a = record_decision(UNDECIDED, "accept_all", [], language="en")
    b = record_decision(UNDECIDED, "custom", ["analytics"], language="en")
    withdrawn = record_decision(a.state, "withdraw", [], language="en")
    return {
        "a": a.state.visitor_key,
        "b": b.state.visitor_key,
        "a_accept": a.record.seq,
        "b_custom": b.record.seq,
        "a_withdraw": withdrawn.record.seq,
    }


# -- permissions ---------------------------------------------------------------------------
def test_without_the_permission_every_screen_is_forbidden(editor):
    for name in SCREENS:
        assert editor.get(_url(name)).status_code == 403, name
    assert editor.get(_url("log"), {"export": "csv"}).status_code == 403
    assert editor.post(_url("verify")).status_code == 403
    key = "a" * 32
    assert (
        editor.post(_url("requests_export"), {"visitor_key": key, "format": "json"}).status_code
        == 403
    )
    assert editor.get(_url("requests_erase"), {"visitor_key": key}).status_code == 403
    assert editor.post(_url("requests_erase"), {"visitor_key": key}).status_code == 403
    assert not ErasureRequest.objects.exists()


def test_without_the_permission_there_is_no_privacy_menu(editor):
    home = editor.get(reverse("wagtailadmin_home"))
    assert home.status_code == 200
    assert _url("log") not in home.content.decode()


def test_the_officer_sees_the_privacy_menu(officer):
    page = officer.get(reverse("wagtailadmin_home")).content.decode()
    for name in ("log", "decisions", "verify", "requests", "processing"):
        assert _url(name) in page, name


def test_anonymous_users_are_sent_to_the_login_page():
    response = Client().get(_url("log"))
    assert response.status_code == 302
    assert reverse("wagtailadmin_login") in response["Location"]


def test_a_superuser_has_the_permission():
    client = _login("root", is_staff=True, is_superuser=True)
    for name in SCREENS:
        assert client.get(_url(name)).status_code == 200, name


# -- the consent log -----------------------------------------------------------------------
def test_the_log_lists_every_record(officer, records):
    response = officer.get(_url("log"))
    assert _seqs(response) == [records["a_accept"], records["b_custom"], records["a_withdraw"]]
    page = response.content.decode()
    assert records["a"] in page and records["b"] in page
    assert "Banner: custom choice" in page


def test_the_log_filters_by_pseudonymous_id(officer, records):
    assert _seqs(officer.get(_url("log"), {"visitor_key": records["b"]})) == [records["b_custom"]]
    # Upper case is accepted; the AJAX results view filters the same way.
    response = officer.get(_url("log_results"), {"visitor_key": records["a"].upper()})
    assert _seqs(response) == [records["a_accept"], records["a_withdraw"]]


def test_an_invalid_id_shows_nothing_rather_than_everything(officer, records):
    response = officer.get(_url("log"), {"visitor_key": "not-a-key"})
    assert _seqs(response) == []
    assert "hexadecimal" in response.content.decode()


def test_the_log_filters_by_method(officer, records):
    response = officer.get(_url("log"), {"method": "withdraw"})
    assert _seqs(response) == [records["a_withdraw"]]


def test_the_log_filters_by_purpose(officer, records):
    def seqs(**params):
        return _seqs(officer.get(_url("log"), params))

    a_accept, b_custom, a_withdraw = records["a_accept"], records["b_custom"], records["a_withdraw"]
    assert seqs(purpose="analytics", decision="granted") == [a_accept, b_custom]
    assert seqs(purpose="marketing", decision="granted") == [a_accept]
    assert seqs(purpose="marketing", decision="denied") == [b_custom, a_withdraw]
    assert seqs(purpose="marketing") == [a_accept, b_custom, a_withdraw]
    assert seqs(purpose="analytics", method="banner_custom") == [b_custom]


def test_the_log_filters_by_date(officer, records):
    today = timezone.now().date()
    tomorrow = today + timedelta(days=1)
    assert len(_seqs(officer.get(_url("log"), {"created_at_from": today.isoformat()}))) == 3
    assert _seqs(officer.get(_url("log"), {"created_at_from": tomorrow.isoformat()})) == []
    assert _seqs(officer.get(_url("log"), {"created_at_to": (today - timedelta(days=1))})) == []


def test_the_log_is_paginated(officer):
    for _ in range(55):
        record_decision(UNDECIDED, "accept_all", [], language="en")
    first = officer.get(_url("log"))
    assert len(first.context["object_list"]) == 50
    assert first.context["paginator"].count == 55
    assert len(officer.get(_url("log"), {"p": 2}).context["object_list"]) == 5


def test_the_log_exports_the_filtered_records_as_csv(officer, records):
    response = officer.get(_url("log"), {"export": "csv", "visitor_key": records["a"]})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["seq"]) for r in rows] == [records["a_withdraw"], records["a_accept"]]
    assert {r["visitor_key"] for r in rows} == {records["a"]}
    accept = rows[1]
    assert accept["method"] == "banner_accept_all"
    assert accept["granted"] == "analytics marketing personalization"
    assert accept["record_hash"] == ConsentRecord.objects.get(seq=records["a_accept"]).record_hash


def test_the_csv_export_neutralises_formulas(officer):
    record_decision(UNDECIDED, "accept_all", [], language="=HYPERLINK(1)")
    record_decision(UNDECIDED, "accept_all", [], language="@SUM(A1)")
    response = officer.get(_url("log"), {"export": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["language"] for r in rows) == ["'=HYPERLINK(1)", "'@SUM(A1)"]


# -- the decisions chart -------------------------------------------------------------------
def test_the_chart_draws_the_tallies_with_a_table_of_the_same_numbers(officer):
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    ConsentTally.objects.create(day=today, method="banner_accept_all", count=7)
    ConsentTally.objects.create(day=today, method="banner_reject_all", count=3)
    ConsentTally.objects.create(day=yesterday, method="withdraw", count=2)
    ConsentTally.objects.create(day=today - timedelta(days=40), method="api", count=99)

    response = officer.get(_url("decisions"))
    assert response.status_code == 200
    chart = response.context["chart"]
    assert [s.method for s in chart.series] == [
        "banner_accept_all",
        "banner_reject_all",
        "withdraw",
    ]
    assert chart.grand_total == 12 and len(chart.buckets) == 30
    assert chart.rows[-1] == (today, [7, 3, 0], 10)
    assert chart.rows[-2] == (yesterday, [0, 0, 2], 2)
    page = response.content.decode()
    assert page.count("<polyline") == 3 and 'role="img"' in page
    assert "Banner: accept all" in page and "Withdrawal" in page
    assert "<td>7</td>" in page and "<td>12</td>" in page
    assert "<script" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]


def test_a_long_period_is_counted_per_week(officer):
    today = timezone.now().date()
    ConsentTally.objects.create(day=today, method="banner_accept_all", count=4)
    ConsentTally.objects.create(day=today - timedelta(days=100), method="api", count=5)
    start = today - timedelta(days=179)
    response = officer.get(_url("decisions"), {"period_from": start, "period_to": today})
    chart = response.context["chart"]
    assert chart.weekly and chart.grand_total == 9
    assert all(b.weekday() == 0 for b in chart.buckets)
    assert "Week of" in response.content.decode()


def test_an_invalid_period_falls_back_and_says_why(officer):
    today = timezone.now().date()
    response = officer.get(
        _url("decisions"), {"period_from": today, "period_to": today - timedelta(days=3)}
    )
    assert response.status_code == 200
    assert "must start before it ends" in response.content.decode()
    assert len(response.context["chart"].buckets) == 30


# -- verification --------------------------------------------------------------------------
def test_verify_reports_ok_with_the_count_and_the_head(officer, records):
    before = officer.get(_url("verify")).content.decode()
    assert "Verify the chain" in before and "records verified" not in before
    response = officer.post(_url("verify"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "<strong>OK</strong>" in page and "The chain is intact: 3 records verified" in page
    head = ConsentRecord.objects.order_by("-seq").first()
    assert f"#{head.seq}" in page and head.record_hash in page


def test_verify_reports_a_tampered_record(officer, records):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET granted = %s WHERE seq = %s",
            ['["marketing"]', records["b_custom"]],
        )
    page = officer.post(_url("verify")).content.decode()
    assert "failed verification" in page
    assert f"record #{records['b_custom']}: modified" in page


def test_verify_needs_a_csrf_token():
    user = get_user_model().objects.create_superuser("root", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(_url("verify")).status_code == 403


# -- data-subject requests -----------------------------------------------------------------
def _event(key: str) -> LoggedEvent:
    return LoggedEvent.objects.create(
        event_id=uuid.uuid4().hex,
        visitor_key=key,
        name="page_view",
        occurred_at=timezone.now(),
        properties={"path": "/guides/"},
    )


def test_export_as_json(officer, records):
    _event(records["a"])
    response = officer.post(
        _url("requests_export"), {"visitor_key": records["a"], "format": "json"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["visitor_key"] == [{"visitor_key": records["a"]}]
    assert [r["seq"] for r in data["consent_records"]] == [
        records["a_accept"],
        records["a_withdraw"],
    ]
    assert [e["name"] for e in data["segments.events"]] == ["page_view"]


def test_export_as_csv(officer, records):
    response = officer.post(
        _url("requests_export"), {"visitor_key": records["b"].upper(), "format": "csv"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["table", "row", "field", "value"]
    assert ["consent_records", "0", "granted", "analytics"] in rows
    assert ["visitor_key", "0", "visitor_key", records["b"]] in rows


def test_a_malformed_id_is_refused(officer):
    for value in ("", "abc", "g" * 32, "a" * 33, XSS):
        response = officer.post(_url("requests_export"), {"visitor_key": value, "format": "json"})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        assert response.context["form"].errors
    assert "<script>alert(1)</script>" not in response.content.decode()


def test_erasure_is_confirmed_then_removes_the_data(officer, records):
    event = _event(records["a"])
    confirm = officer.get(_url("requests_erase"), {"visitor_key": records["a"]})
    assert confirm.status_code == 200
    assert confirm.context["held"]["segments.events"] == 1
    assert "Yes, erase" in confirm.content.decode()
    assert LoggedEvent.objects.filter(pk=event.pk).exists()  # nothing happens before confirmation
    assert not ErasureRequest.objects.filter(visitor_key=records["a"], reason="request").exists()

    response = officer.post(_url("requests_erase"), {"visitor_key": records["a"]})
    assert response.status_code == 302 and response["Location"] == _url("requests")
    assert not LoggedEvent.objects.filter(visitor_key=records["a"]).exists()
    erasure = ErasureRequest.objects.get(visitor_key=records["a"], reason="request")
    assert erasure.completed_at is not None
    latest = ConsentRecord.objects.filter(visitor_key=records["a"]).order_by("-seq").first()
    assert latest.method == "erasure" and latest.granted == []
    assert LoggedEvent.objects.count() == 0
    data = json.loads(
        officer.post(
            _url("requests_export"), {"visitor_key": records["a"], "format": "json"}
        ).content
    )
    assert data["segments.events"] == []
    page = officer.get(_url("requests")).content.decode()
    assert "erased" in page and records["a"][:8] in page  # message and the recent erasures


# -- the record of processing --------------------------------------------------------------
def test_the_record_of_processing(officer, settings):
    settings.CONSENT_CONTROLLER = "Example Ltd\ndpo@example.com"
    settings.CONSENT_RECIPIENTS = ["Hosting: Example Cloud (EU)"]
    settings.CONSENT_RECORD_RETENTION_DAYS = 730
    page = officer.get(_url("processing")).content.decode()
    assert "Example Ltd<br>dpo@example.com" in page
    assert "Hosting: Example Cloud (EU)" in page
    for purpose in ("Analytics", "Personalization", "Marketing", "Strictly necessary"):
        assert purpose in page
    assert "Consent (Art. 6(1)(a))" in page
    assert "730 days (about 2 years) after the consent ended" in page
    assert "183 days" in page  # consent lifetime
    assert "1 hour after the withdrawal" in page
    assert "395 days" in page  # events
    for category in ("Pseudonymous key", "Events", "Features", "Segments", "Consent records"):
        assert category in page
    assert "Keyed hashing" in page and "No IP addresses" in page


def test_the_record_of_processing_shows_the_retention_an_app_configures(officer, settings):
    page = officer.get(_url("processing")).content.decode()
    assert "400 days (about 1.1 years) after the visitor&#x27;s last activity" in page
    settings.SEGMENTS_EVENT_RETENTION_DAYS = 90
    settings.SEGMENTS_BACKEND = {
        **settings.SEGMENTS_BACKEND,
        "OPTIONS": {**settings.SEGMENTS_BACKEND.get("OPTIONS", {}), "PROFILE_TTL": 30 * 86400},
    }
    page = officer.get(_url("processing")).content.decode()
    assert "<td>90 days</td>" in page
    events = re.search(r"<tr><th[^>]*>Events[^<]*</th><td>([^<]*)</td>", page)
    assert events is not None and "395 days" not in events.group(1), page
    assert "30 days after the visitor&#x27;s last activity" in page


def test_an_app_registers_its_processing_activity(officer):
    days = {"n": 7}
    registry.register_processing_activity(
        "newsletter",
        categories=[("Email address", "Given to receive the newsletter.")],
        retention=[
            RetentionPeriod("Subscriptions", lambda: days["n"] * 86400, "%(duration)s at most")
        ],
        recipients=["Mailer Inc. (processor)"],
    )
    try:
        record = processing_record()
        assert record["categories"][-1] == ("Email address", "Given to receive the newsletter.")
        assert record["retention"][-1] == ("Subscriptions", "7 days at most")
        assert record["recipients"][-1] == "Mailer Inc. (processor)"
        days["n"] = 14  # read each time the record is built
        assert processing_record()["retention"][-1] == ("Subscriptions", "14 days at most")
        page = officer.get(_url("processing")).content.decode()
        assert "Email address" in page and "Mailer Inc. (processor)" in page
    finally:
        registry.handlers.processing.pop("newsletter")


def test_consent_names_no_app_above_it():
    """Apps above consent take part in its privacy tools by registering (consent.registry)."""
    sources = Path(registry.__file__).parent.rglob("*.py")
    for source in sources:
        if "migrations" not in source.parts:
            text = source.read_text().lower()
            assert "segments" not in text and "cms_blocks" not in text, source


def test_the_record_of_processing_warns_without_a_controller(officer):
    page = officer.get(_url("processing")).content.decode()
    assert "Not configured: set CONSENT_CONTROLLER" in page


# -- escaping ------------------------------------------------------------------------------
def test_user_provided_text_is_escaped(officer, settings):
    record_decision(UNDECIDED, "accept_all", [], language="<b>bold</b>")
    settings.CONSENT_CONTROLLER = XSS
    responses = [
        officer.get(_url("log"), {"visitor_key": XSS, "method": XSS, "p": XSS}),
        officer.get(_url("log"), {"ordering": XSS}),
        officer.get(_url("log_results"), {"visitor_key": XSS, "_w_filter_fragment": "1"}),
        officer.get(_url("decisions"), {"period_from": XSS, "period_to": XSS}),
        officer.get(_url("requests_erase"), {"visitor_key": XSS}),
        officer.get(_url("processing")),
    ]
    for response in responses:
        page = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in responses[0].content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in responses[-1].content.decode()
    page = officer.get(_url("log")).content.decode()
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_the_permission_can_be_given_to_a_group():
    client = _login("root", is_staff=True, is_superuser=True)
    page = client.get(reverse("wagtailusers_groups:add")).content.decode()
    permission = _permission("consent.view_consent_log")
    assert f'value="{permission.pk}"' in page
    assert "Can view the consent log and privacy tools" in page


# -- spreadsheet exports -------------------------------------------------------------------
def test_the_xlsx_export_neutralises_formulas(officer):
    from openpyxl import load_workbook

    record_decision(UNDECIDED, "accept_all", [], language="=HYPERLINK(1)")
    response = officer.get(_url("log"), {"export": "xlsx"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    language = rows[0].index("language")
    assert rows[1][language] == "'=HYPERLINK(1)"
    assert sheet.cell(row=2, column=language + 1).data_type == "s"  # text, not a formula
    assert rows[1][rows[0].index("granted")] == "analytics marketing personalization"


def test_decisions_export_as_csv(officer):
    today = timezone.now().date()
    ConsentTally.objects.create(day=today, method="banner_accept_all", count=7)
    ConsentTally.objects.create(day=today, method="withdraw", count=2)
    response = officer.get(_url("decisions"), {"export": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["day", "banner_accept_all", "withdraw", "total"]
    assert rows[-1] == [today.isoformat(), "7", "2", "9"] and len(rows) == 31


@pytest.mark.parametrize(
    "period",
    [
        {"period_to": "9999-12-31"},
        {"period_from": "0001-01-01", "period_to": "0001-01-02"},
        {"period_from": "2026-01-10", "period_to": "2026-01-01"},
        {"period_from": "2020-01-01", "period_to": "2026-01-01"},
        {"period_from": "yesterday"},
    ],
)
def test_a_broken_period_is_a_message_on_the_page_never_an_error(officer, period):
    response = officer.get(_url("decisions"), period)
    assert response.status_code == 200
    errors = response.context["filters"].form.errors
    assert errors
    page = response.content.decode()
    assert 'class="nice-padding tailored-report__errors"' in page
    assert len(response.context["chart"].buckets) == 30  # the default period instead


# -- the audit log -------------------------------------------------------------------------
def _entries(action: str) -> list:
    from wagtail.models import ModelLogEntry

    return list(ModelLogEntry.objects.filter(action=action).order_by("pk"))


def test_privacy_actions_are_in_the_audit_log_without_visitor_ids(officer, records):
    key = records["a"]
    officer.get(_url("log"), {"export": "csv", "visitor_key": key, "method": "withdraw"})
    officer.post(_url("requests_export"), {"visitor_key": key, "format": "json"})
    officer.post(_url("requests_erase"), {"visitor_key": key})
    officer.post(_url("verify"))

    (export,) = _entries("consent.export_log")
    assert export.data == {
        "format": "csv",
        "filters": {"visitor_key": key[:8] + "…", "method": "withdraw"},
    }
    (dsr,) = _entries("consent.dsr_export")
    assert dsr.data["format"] == "json" and dsr.data["rows"] > 0
    (erase,) = _entries("consent.erase")
    assert erase.data["erasure"] == ErasureRequest.objects.get(reason="request").pk
    (verify,) = _entries("consent.verify")
    assert verify.data["checked"] == 4 and verify.data["problems"] == 0
    for entry in (export, dsr, erase, verify):
        assert entry.user.username == "officer"
        assert entry.content_type.model == "consentrecord"
        assert key not in json.dumps(entry.data) + entry.label  # never the whole id
        assert records["b"] not in json.dumps(entry.data) + entry.label

    history = officer.get(reverse("wagtailadmin_reports:site_history")).content.decode()
    assert history.count("Exported the consent log as CSV") == 1
    assert f"Exported the data held about pseudonymous id {key[:8]}…" in history
    assert f"Erased the data held about pseudonymous id {key[:8]}…" in history
    assert "Verified the consent log up to #4: 4 records, 0 problems" in history


# -- query counts --------------------------------------------------------------------------
def test_the_log_runs_the_same_queries_for_more_records(officer):
    from tests.support.query_counts import assert_queries_do_not_grow

    def build(n):
        for _ in range(n):
            record_decision(UNDECIDED, "accept_all", [], language="en")

    assert_queries_do_not_grow(officer, _url("log"), build)
    assert_queries_do_not_grow(officer, _url("log_results"), build, params={"method": "api"})


def test_decisions_run_the_same_queries_for_more_days(officer):
    from tests.support.query_counts import assert_queries_do_not_grow

    today = timezone.now().date()
    made = []

    def build(n):
        for _ in range(n):
            day = today - timedelta(days=len(made))
            made.append(ConsentTally.objects.create(day=day, method="withdraw", count=1))

    assert_queries_do_not_grow(officer, _url("decisions"), build)


def test_the_requests_screen_runs_the_same_queries_for_more_erasures(officer):
    from tests.support.query_counts import assert_queries_do_not_grow

    def build(n):
        for i in range(n):
            ErasureRequest.objects.create(
                visitor_key=f"{i:032x}", reason="request", due_at=timezone.now()
            )

    assert_queries_do_not_grow(officer, _url("requests"), build, n=3)
