"""Data-subject requests, withdrawal, signals, retention and key rotation, against the real
PostgreSQL and Redis."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from consent.actions import record_decision
from consent.api import notice_version
from consent.identity import visitor_key
from consent.models import ConsentRecord, ConsentTally, ErasureRequest, IdentityLink, PurgeLog
from consent.policy import UNDECIDED
from consent.privacy import (
    erase_visitor,
    export_csv,
    export_visitor,
    run_due_erasures,
    run_retention,
    verify_log,
)
from segments.api import exchange
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def _key(client) -> str:
    return visitor_key(client.cookies[COOKIE].value.split("|")[1])


def _engaged(client):
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert "ENGAGED10" in client.get("/").content.decode()


def _stream_entries(backend, key=None):
    entries = []
    for stream in backend.client.keys(f"{backend.prefix}:e:*"):
        entries += [f for _i, f in backend.client.xrange(stream) if key is None or f["k"] == key]
    return entries


@pytest.fixture
def no_worker():
    """Tasks are published to the broker, which nobody consumes: events stay in flight."""
    from demo.celery import app

    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


# -- access --------------------------------------------------------------------------------
def test_export_holds_everything_about_the_visitor(backend):
    client = consenting_browser()
    _engaged(client)
    key = _key(client)
    data = export_visitor(key)
    assert [r["method"] for r in data["consent_records"]] == ["banner_accept_all"]
    assert len(data["segments.events"]) == 4
    assert data["segments.features"][0]["t"] == {"page_view": 4}
    assert [s["segment"] for s in data["segments.segments"]] == ["engaged"]
    csv_text = export_csv(data)
    assert csv_text.startswith("table,row,field,value")
    assert "segments.events" in csv_text

    call_command("privacy_export", key, "--format", "csv", "--output", "/tmp/tailored-export.csv")
    assert "segments.features" in Path("/tmp/tailored-export.csv").read_text()


def test_a_visitor_downloads_their_own_data_with_their_cookie(backend):
    client = consenting_browser()
    _engaged(client)
    response = client.get("/consent/my-data/?format=json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="my-data.json"'
    data = json.loads(response.content)
    assert data["visitor_key"] == [{"visitor_key": _key(client)}]
    assert client.get("/consent/my-data/?format=csv")["Content-Type"].startswith("text/csv")
    assert client.get("/consent/my-data/?format=xml").status_code == 400
    assert browser().get("/consent/my-data/").status_code == 404  # no identifier, no data


def test_export_cells_cannot_inject_spreadsheet_formulas():
    text = export_csv({"t": [{"f": '=HYPERLINK("x")'}]})
    assert "'=HYPERLINK" in text


# -- erasure -------------------------------------------------------------------------------
def test_erasure_reaches_postgres_redis_and_the_stream_with_an_event_in_flight(backend, no_worker):
    client = consenting_browser()
    other = consenting_browser()
    for path in ("/", "/guides/"):
        client.get(path)
        other.get(path)
    key, other_key = _key(client), _key(other)
    assert len(_stream_entries(backend, key)) == 2  # in flight: no worker consumed them
    from segments.stream import drain as pipeline

    # Some of the visitor's events were processed earlier: features and log rows exist.
    pipeline.drain_partition(backend.partition_for(key))
    client.get("/about-us/")  # and one more is in flight
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 2
    assert len(_stream_entries(backend, key)) == 1

    call_command("privacy_erase", key)

    assert LoggedEvent.objects.filter(visitor_key=key).count() == 0
    assert _stream_entries(backend, key) == []
    assert backend.visitor_data(key).profile is None
    assert not any(k.startswith("s:") for k in backend.client.hkeys(f"{backend.prefix}:m:{key}"))
    # A minimal erasure record and the consent proofs (with the erasure) are kept.
    erasure = ErasureRequest.objects.get(visitor_key=key)
    assert erasure.completed_at and erasure.result["segments"] == 3
    assert ConsentRecord.objects.filter(visitor_key=key).latest("seq").method == "erasure"
    assert verify_log()[1] == []
    # Events arriving afterwards for that id are dropped (tombstone).
    client.get("/guides/")
    assert _stream_entries(backend, key) == []
    assert exchange(key).consented is False
    # The other visitor is untouched.
    assert (
        LoggedEvent.objects.filter(visitor_key=other_key).count()
        + len(_stream_entries(backend, other_key))
        == 2
    )


def test_a_visitor_erases_their_own_data(backend):
    client = consenting_browser()
    _engaged(client)
    key = _key(client)
    response = client.post("/consent/my-data/erase/")
    assert response.status_code == 303
    assert response.cookies[COOKIE].value.split("|")[1] == "-"  # identifier forgotten
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 0
    assert ErasureRequest.objects.get(visitor_key=key).reason == "visitor"
    assert browser().post("/consent/my-data/erase/").status_code == 404


def test_withdrawal_erases_data_collected_under_the_purpose_after_the_delay(backend, settings):
    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 3600
    client = consenting_browser()
    _engaged(client)
    key = _key(client)
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})
    pending = ErasureRequest.objects.get(visitor_key=key)
    assert pending.reason == "withdrawal" and pending.purposes == ["marketing", "personalization"]
    assert run_due_erasures() == 0  # not due yet
    assert LoggedEvent.objects.filter(visitor_key=key).exists()
    assert run_due_erasures(now=timezone.now() + timedelta(hours=2)) == 1
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()
    assert backend.visitor_data(key).profile is None


def test_granting_again_before_the_delay_cancels_the_erasure(backend, settings):
    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 3600
    client = consenting_browser()
    _engaged(client)
    key = _key(client)
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})  # keeps the id
    client.post("/consent/", {"action": "accept_all"})
    assert _key(client) == key
    assert ErasureRequest.objects.get().cancelled_at is not None
    assert run_due_erasures(now=timezone.now() + timedelta(hours=2)) == 0


def test_withdrawal_deletes_the_cookies_of_withdrawn_purposes(backend):
    from cookie_consent.models import Cookie, CookieGroup

    Cookie.objects.create(cookiegroup=CookieGroup.objects.get(varname="marketing"), name="_ads")
    client = consenting_browser()
    response = client.post("/consent/", {"action": "withdraw"})
    assert response.cookies["_ads"]["max-age"] == 0
    assert response.cookies[COOKIE]["max-age"] != 0


# -- withdrawal across processes -------------------------------------------------------------
def test_withdrawal_in_another_process_stops_tracking_on_the_next_request(backend):
    client = consenting_browser()
    client.get("/")
    key = _key(client)
    cookie = client.cookies[COOKIE].value
    script = (
        "import django, sys; django.setup();"
        "from django.test import Client;"
        "c = Client(HTTP_USER_AGENT='Mozilla/5.0 Firefox/140.0');"
        f"c.cookies['{COOKIE}'] = sys.argv[1];"
        "r = c.post('/consent/', {'action': 'withdraw'});"
        "print(r.status_code)"
    )
    from django.db import connection

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TAILORED_WORKER_DB_NAME": connection.settings_dict["NAME"],
        "TAILORED_TEST_RUN": settings.TEST_RUN_ID,
        "PATH": "/usr/bin:/bin",
        # The same services as this process, wherever they point.
        **{k: v for k, v in os.environ.items() if k in ("TEST_DATABASE_URL", "TEST_REDIS_URL")},
    }
    out = subprocess.run(
        [sys.executable, "-c", script, cookie],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().endswith("303"), out.stderr[-2000:]
    logged = LoggedEvent.objects.filter(visitor_key=key)
    before = logged.count() + len(_stream_entries(backend, key))
    client.get("/guides/")  # same (old) cookie in this process: the server's record decides
    after = logged.count() + len(_stream_entries(backend, key))
    assert after == before


# -- expiry and browser signals --------------------------------------------------------------
def test_expired_consent_records_nothing_even_with_a_valid_cookie(backend):
    client = consenting_browser()
    key = _key(client)
    backend.set_consent(key, {"personalization": time.time() - 1}, notice_version(), 3600)
    client.get("/")
    assert _stream_entries(backend, key) == []
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 0


def test_gpc_turns_covered_purposes_off_and_records_it_once(backend):
    client = consenting_browser()  # accepted all, without a signal
    key = _key(client)
    client.defaults["HTTP_SEC_GPC"] = "1"
    response = client.get("/")
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 0
    record = ConsentRecord.objects.filter(visitor_key=key).latest("seq")
    assert record.method == "gpc" and record.granted == ["analytics"] and record.gpc
    assert response.cookies[COOKIE].value.split("|")[2] == "analytics"
    client.get("/guides/")
    assert ConsentRecord.objects.filter(visitor_key=key, method="gpc").count() == 1


def test_an_explicit_opt_in_while_sending_gpc_overrides_it(backend):
    client = browser()
    client.defaults["HTTP_SEC_GPC"] = "1"
    client.post("/consent/", {"action": "custom", "purposes": ["personalization"]})
    key = _key(client)
    _engaged(client)
    assert ConsentRecord.objects.get(visitor_key=key).gpc is True
    assert not ConsentRecord.objects.filter(method="gpc").exists()


@pytest.mark.parametrize("value", ["0", "true", "", "1, 1", "yes"])
def test_gpc_values_other_than_1_are_ignored(backend, value):
    client = consenting_browser()
    client.defaults["HTTP_SEC_GPC"] = value
    _engaged(client)


def test_do_not_track_counts_only_when_configured(backend, settings):
    client = consenting_browser()
    client.defaults["HTTP_DNT"] = "1"
    _engaged(client)
    settings.CONSENT_HONOR_DNT = True
    client.get("/")
    assert ConsentRecord.objects.filter(method="gpc").count() == 1


def test_client_sent_consent_in_an_event_payload_is_ignored(backend):
    from segments.api import track

    assert track("b" * 32, "purchase", consent=True, value=10) is False
    assert _stream_entries(backend) == []


def test_google_consent_mode_signals_are_exposed(backend):
    from django.template import Context, Template

    request = consenting_browser("custom", purposes=["analytics"]).get("/").wsgi_request
    html = Template("{% load consent_tags %}{% consent_mode %}").render(
        Context({"request": request})
    )
    data = json.loads(html.split(">", 1)[1].rsplit("<", 1)[0])
    assert data == {
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "analytics_storage": "granted",
    }
    state = browser().get("/consent/state/").json()
    assert state["decided"] is False and state["consent_mode"]["analytics_storage"] == "denied"


# -- page caching ---------------------------------------------------------------------------
def test_client_mode_pages_are_safe_in_a_shared_cache(backend, settings):
    settings.CONSENT_BANNER_MODE = "client"
    accepted = consenting_browser()
    accepted_page = accepted.get("/guides/").content.decode()
    fresh_page = browser().get("/guides/").content.decode()
    # Same markup for both (no per-visitor banner state, no CSRF token in the page)...
    strip = lambda html: html.split('<div class="consent"', 1)[1]  # noqa: E731
    assert strip(accepted_page) == strip(fresh_page)
    assert 'csrfmiddlewaretoken" value=""' in fresh_page
    # ...and the state comes from an uncached endpoint.
    response = accepted.get("/consent/state/")
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert response.json()["decided"] is True and response.json()["csrf_token"]
    assert browser().get("/consent/state/").json()["decided"] is False


# -- rate limits ----------------------------------------------------------------------------
def test_consent_endpoints_are_rate_limited(backend, settings, monkeypatch):
    from consent.api import ClientRateThrottle

    settings.CONSENT_RATE = "3/min"
    # Hold the clock inside one window: a window boundary mid-test would reset the count.
    frozen = (time.time() // 60) * 60 + 1
    monkeypatch.setattr(ClientRateThrottle, "timer", staticmethod(lambda: frozen))
    client = browser()
    codes = [client.post("/consent/", {"action": "reject_all"}).status_code for _ in range(5)]
    assert codes == [303, 303, 303, 429, 429]
    assert ConsentTally.objects.get(method="banner_reject_all").count == 3
    # The next window starts afresh.
    monkeypatch.setattr(ClientRateThrottle, "timer", staticmethod(lambda: frozen + 60))
    assert client.post("/consent/", {"action": "reject_all"}).status_code == 303


# -- retention and key rotation ---------------------------------------------------------------
def test_retention_purges_old_events_and_consent_records_and_the_chain_still_verifies(
    backend, settings
):
    settings.CONSENT_RECORD_RETENTION_DAYS = 0
    settings.CONSENT_MAX_AGE = 60
    for _ in range(3):
        record_decision(UNDECIDED, "accept_all", [])
    client = consenting_browser()
    _engaged(client)
    LoggedEvent.objects.update(occurred_at=timezone.now() - timedelta(days=500))
    result = run_retention(now=timezone.now() + timedelta(days=1))
    assert result["segments.events"] == 4
    assert result["consent.records"] == 3  # the newest record anchors the chain
    assert ConsentRecord.objects.count() == 1
    assert verify_log() == (1, [])
    assert PurgeLog.objects.filter(target="consent.records", removed=3).exists()


def test_a_returning_visitor_is_rekeyed_after_key_rotation(backend, settings):
    client = consenting_browser()
    _engaged(client)
    old_key = _key(client)
    old_secret = settings.CONSENT_HASH_KEY
    settings.CONSENT_CHAIN_KEY = "chain-key-kept-across-rotation-0123456789"
    settings.CONSENT_HASH_KEY = "the-new-hash-key-0123456789abcdef0123456789"
    settings.CONSENT_PREVIOUS_HASH_KEYS = [old_secret]
    new_key = _key(client)
    assert new_key != old_key
    assert "ENGAGED10" in client.get("/").content.decode()  # still themselves
    assert ConsentRecord.objects.filter(visitor_key=new_key, method="key_rotation").exists()
    assert LoggedEvent.objects.filter(visitor_key=old_key).count() == 0
    assert LoggedEvent.objects.filter(visitor_key=new_key).count() >= 4


# -- linked accounts --------------------------------------------------------------------------
def test_a_consenting_visitor_who_logs_in_is_linked_by_keyed_hashes(backend, django_user_model):
    user = django_user_model.objects.create_user("ann", password="pw-123456")
    client = consenting_browser()
    client.force_login(user)
    client.post("/admin/login/", {"username": "ann", "password": "pw-123456"})
    link = IdentityLink.objects.get()
    assert link.visitor_key == _key(client) and link.user_key != str(user.pk)
    erase_visitor(link.visitor_key)
    assert not IdentityLink.objects.exists()
