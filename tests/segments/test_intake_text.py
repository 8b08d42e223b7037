"""Free text at intake (issue #12): what PostgreSQL cannot store is refused (or, in a page
view's context, dropped) before it reaches the stream, so no partition stops; email
addresses, phone numbers and IP addresses are replaced by placeholders before anything is
stored, in every intake path (the client endpoint, page views, track()/record_events; the
importer's are in test_imports.py)."""

import json
import time

import pytest
from django.test import RequestFactory

from consent.api import notice_version
from consent.models import ConsentRecord
from segments.api import EventError, mirror_consent, record_events, track
from segments.events import Event, decode, encode, text, validate
from segments.events.request import page_view, request_context
from segments.models import LoggedEvent
from segments.stream.drain import drain_partition
from tests.builders import consenting_browser, demo_site

# -- the checks themselves (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("bob@example.com", "[email]"),
        ("write to Bob.Smith+news@mail.example.co.uk today", "write to [email] today"),
        ("bob%40example.com", "[email]"),
        ("+44 20 7946 0958", "[phone]"),
        ("+447700900123", "[phone]"),
        ("call 555-123-4567", "call [phone]"),
        ("(555) 123-4567", "[phone]"),
        ("06 12 34 56 78", "[phone]"),
        ("from 192.168.0.1", "from [ip]"),
        ("10.0.0.1:8080", "[ip]:8080"),
        ("2001:db8::ff00:42:8329", "[ip]"),
        ("::1", "[ip]"),
        ("fe80::1%eth0", "[ip]"),
        ("::ffff:192.0.2.1", "[ip]"),
    ],
)
def test_personal_data_in_text_is_replaced(raw, stored):
    assert text.redact(raw) == stored
    assert validate("click", {"note": raw}) == {"note": stored}


@pytest.mark.parametrize(
    "kept",
    [
        "536365",  # an order number
        "85123A",
        "2026-01-01 10:00:00",
        "2026-01-01T10:00:00+00:00",
        "12/01/2010 08:26",
        "10:00:00",
        "12.50 13.99",
        "999.1.1.1",  # not an address
        "00:1A:2B:3C:4D:5E",
        "3c944804-ade1-b0ce-177a-cae66ddf1e5a",
        "spring-2026",
        "/products/mug-12345/",
        "@handle",
    ],
)
def test_text_without_personal_data_is_kept(kept):
    assert text.redact(kept) == kept


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"note": "a\u0000b"}, "'note' contains a NUL character"),
        ({"note": "\u0000"}, "'note' contains a NUL character"),
        ({"note": "bad \ud800"}, "'note' is not valid Unicode text"),
        ({"a\u0000": "x"}, "Invalid property name"),
        ({"\ud800": "x"}, "Invalid property name"),
        ({"k" * 65: "x"}, "Invalid property name"),
        ({"note": "x" * 513}, "longer than 512"),
        ({"n": float("nan")}, "finite"),
        ({"n": float("inf")}, "finite"),
        ({"nested": {"deep": "\u0000"}}, "string, number, boolean or null"),
    ],
)
def test_what_the_log_cannot_store_is_refused_by_validation(properties, message):
    with pytest.raises(EventError, match=message):
        validate("click", properties)


@pytest.mark.django_db  # (the context reads which query parameters the enabled rules name)
def test_a_page_views_context_drops_unstorable_text_and_personal_data():
    request = RequestFactory().get(
        "/unsubscribe/bob@example.com/",
        {"utm_source": "\u0000", "utm_medium": "a\u0000b", "utm_campaign": "x@example.org"},
        HTTP_REFERER="https://mail.example.net/inbox?to=bob@example.com",
    )
    context = request_context(request)
    assert "utm_source" not in context  # nothing left once the NUL is gone
    assert context["utm_medium"] == "ab"
    assert context["utm_campaign"] == "[email]"
    assert context["referrer"] == "mail.example.net"  # the host only
    assert context["path"] == "/unsubscribe/[email]/"
    assert page_view(request, "k").properties["path"] == "/unsubscribe/[email]/"
    request = RequestFactory().get("/", HTTP_REFERER="http://203.0.113.9/some/page")
    assert request_context(request)["referrer"] == "[ip]"
    request = RequestFactory().get("/a\u0000b/")
    assert request_context(request)["path"] == "/ab/"


def test_no_event_with_a_nul_reaches_the_stream_whoever_built_it():
    """encode() is the last gate before the stream (exchange, imports, record_events)."""
    for properties in ({"note": "a\u0000b"}, {"a\u0000": 1}):
        with pytest.raises(EventError, match="NUL"):
            encode(Event(visitor_key="k", name="click", ts=1.0, properties=properties))
    literal = {"note": "a backslash-u: \\u0000"}  # the six characters, not a NUL: fine
    assert decode(encode(Event(visitor_key="k", name="click", ts=1.0, properties=literal)))


# -- every intake path, against the real services ---------------------------------------------


def services(test):
    return pytest.mark.services(pytest.mark.django_db(test))


KEY = "0123456789abcdef0123456789abcdef"
RAW = ("bob@example.com", "7946 0958", "203.0.113.9", "2001:db8::1")


def _visitor():
    return ConsentRecord.objects.get().visitor_key


def _profile(backend, key):
    return backend.visitor_data(key).profile or ""


def _clean(backend, key):
    """No raw personal data in the durable log or the fast store."""
    stored = json.dumps([e.properties for e in LoggedEvent.objects.all()]) + _profile(backend, key)
    stored += json.dumps(backend.visitor_data(key).fields)
    for raw in RAW:
        assert raw not in stored, raw


@services
def test_a_nul_in_a_client_property_is_a_400_and_the_partition_keeps_draining(backend):
    demo_site()
    client = consenting_browser()
    body = '{"events": [{"name": "click", "properties": {"label": "a\\u0000b"}}]}'
    response = client.post("/api/events/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["error"]
    body = {"events": [{"name": "click", "properties": {"label": "fine"}}]}
    response = client.post("/api/events/", json.dumps(body), content_type="application/json")
    assert response.json() == {"recorded": 1}
    assert [e.properties for e in LoggedEvent.objects.filter(name="click")] == [{"label": "fine"}]
    assert not backend.pending_partitions()


@services
def test_a_nul_in_a_campaign_parameter_never_fails_the_page_nor_stops_the_partition(backend):
    demo_site()
    client = consenting_browser()
    assert client.get("/?utm_source=%00&utm_campaign=spring").status_code == 200
    assert client.get("/guides/").status_code == 200
    views = list(LoggedEvent.objects.filter(name="page_view").order_by("occurred_at"))
    assert [v.properties["path"] for v in views] == ["/", "/guides/"]
    assert "utm_source" not in views[0].properties
    assert views[0].properties["utm_campaign"] == "spring"
    assert not backend.pending_partitions()


@services
def test_personal_data_in_client_properties_is_replaced_before_storage(backend):
    demo_site()
    client = consenting_browser()
    body = {
        "events": [
            {
                "name": "click",
                "properties": {
                    "label": "bob@example.com",
                    "note": "call +44 20 7946 0958 from 203.0.113.9",
                    "category": "2001:db8::1",
                },
            }
        ]
    }
    response = client.post("/api/events/", json.dumps(body), content_type="application/json")
    assert response.json() == {"recorded": 1}
    click = LoggedEvent.objects.get(name="click")
    assert click.properties == {
        "label": "[email]",
        "note": "call [phone] from [ip]",
        "category": "[ip]",
    }
    assert "click@category=[ip]" in json.loads(_profile(backend, _visitor()))["b"]
    _clean(backend, _visitor())


@services
def test_personal_data_in_a_page_views_context_is_replaced_before_storage(backend):
    demo_site()
    client = consenting_browser()
    response = client.get(
        "/?utm_source=203.0.113.9&utm_medium=2001:db8::1&utm_campaign=bob%40example.com",
        HTTP_REFERER="https://mail.example.net/read?from=bob@example.com&tel=020+7946+0958",
    )
    assert response.status_code == 200
    view = LoggedEvent.objects.get(name="page_view")
    assert view.properties["utm_source"] == "[ip]"
    assert view.properties["utm_medium"] == "[ip]"
    assert view.properties["utm_campaign"] == "[email]"
    assert view.properties["referrer"] == "mail.example.net"
    context = json.loads(_profile(backend, _visitor()))["c"]
    assert context["utm_campaign"] == "[email]" and context["referrer"] == "mail.example.net"
    assert client.get("/guides/?utm_campaign=call%20%2B44%2020%207946%200958").status_code == 200
    view = LoggedEvent.objects.get(name="page_view", properties__path="/guides/")
    assert view.properties["utm_campaign"] == "call [phone]"
    _clean(backend, _visitor())


@services
def test_track_and_record_events_refuse_unstorable_text_and_replace_personal_data(backend):
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    for bad in ("a\u0000b", "lone \udc00"):
        with pytest.raises(ValueError):
            track(KEY, "signup", plan=bad)
        with pytest.raises(EventError):
            record_events(KEY, [("signup", {"plan": "ok"}, None), ("signup", {"plan": bad}, None)])
    assert track(
        KEY, "signup", plan="pro", contact="bob@example.com or 555-123-4567", seen="203.0.113.9"
    )
    assert record_events(KEY, [("login", {"from": "2001:db8::1"}, None)]) == 1
    drain_partition(backend.partition_for(KEY))
    signup = LoggedEvent.objects.get(name="signup")
    assert signup.properties == {"plan": "pro", "contact": "[email] or [phone]", "seen": "[ip]"}
    assert LoggedEvent.objects.get(name="login").properties == {"from": "[ip]"}
    assert not backend.pending_partitions()
    _clean(backend, KEY)
