"""The client event endpoint (POST /api/events/) against the real database and fast store."""

import io
import json

import pytest
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.test import RequestFactory

from consent.api import MAX_BODY_BYTES, ClientRateThrottle, JSONParser, RequestTooLarge
from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site

# Transactional: the consent mirror is written on commit, and the eager drain writes events.
pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

URL = "/api/events/"
BOT_UA = "Googlebot/2.1 (+http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def post(client, body, content_type="application/json", **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type=content_type, **extra)


def batch(*names, **properties):
    return {"events": [{"name": n, "properties": dict(properties)} for n in names]}


def visitor_key():
    return ConsentRecord.objects.get().visitor_key


def profile(backend, key):
    raw = backend.visitor_data(key).profile
    return json.loads(raw) if raw else None


def stored_keys(backend):
    return backend.client.keys(f"{backend.prefix}:*")


def client_events():
    return LoggedEvent.objects.exclude(name="page_view")


# -- recording ------------------------------------------------------------------------------


def test_a_consented_visitors_events_are_recorded_with_their_properties(backend):
    client = consenting_browser()
    body = {
        "events": [
            {"name": "click", "properties": {"target": "nav", "label": "guides"}},
            {"name": "scroll", "properties": {"depth": 50}},
            {"name": "add_to_cart", "properties": {"category": "kitchen", "quantity": 2}},
        ]
    }
    response = post(client, body, HTTP_ORIGIN="http://testserver")
    assert response.status_code == 202, response.content
    assert response.json() == {"recorded": 3}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies

    rows = {e.name: e for e in client_events()}
    assert set(rows) == {"click", "scroll", "add_to_cart"}
    assert all(e.visitor_key == visitor_key() for e in rows.values())
    assert rows["click"].properties == {"target": "nav", "label": "guides"}
    assert rows["scroll"].properties == {"depth": 50}
    assert rows["add_to_cart"].properties == {"category": "kitchen", "quantity": 2}
    totals = profile(backend, visitor_key())["t"]
    assert totals["click"] == totals["scroll"] == totals["add_to_cart"] == 1


def test_a_retried_batch_is_counted_once(backend):
    client = consenting_browser()
    body = {
        "events": [
            {"name": "click", "event_id": "0123456789abcdef0123456789abcdef"},
            {"name": "click", "event_id": "fedcba9876543210fedcba9876543210"},
        ]
    }
    assert post(client, body).json() == {"recorded": 2}
    assert post(client, body).json() == {"recorded": 2}  # accepted again, dropped downstream
    assert profile(backend, visitor_key())["t"]["click"] == 2
    assert client_events().count() == 2


def test_a_beacon_text_plain_body_is_accepted(backend):
    client = consenting_browser()
    response = post(client, batch("click"), content_type="text/plain;charset=UTF-8")
    assert response.status_code == 202
    assert response.json() == {"recorded": 1}
    assert client_events().get().name == "click"


def test_unknown_top_level_and_event_keys_are_ignored(backend):
    client = consenting_browser()
    body = {"v": 2, "events": [{"name": "click", "properties": {}, "extra": [1, 2]}]}
    assert post(client, body).json() == {"recorded": 1}


def test_an_empty_batch_records_nothing(backend):
    assert post(consenting_browser(), {"events": []}).json() == {"recorded": 0}


# -- consent --------------------------------------------------------------------------------


def test_without_consent_nothing_is_stored_and_no_error_or_cookie(backend):
    client = browser()
    response = post(client, batch("click", "scroll"))
    assert response.status_code == 202
    assert response.json() == {"recorded": 0}
    assert not response.cookies
    assert stored_keys(backend) == []
    assert not LoggedEvent.objects.exists()


def test_a_client_sent_consent_flag_changes_nothing(backend):
    for client in (browser(), consenting_browser("reject_all")):
        body = {"consent": True, "purposes": ["personalization"], **batch("click")}
        body["events"][0]["properties"] = {"consent": True}
        response = post(client, body)
        assert response.status_code == 202
        assert response.json() == {"recorded": 0}
        assert not response.cookies
    assert stored_keys(backend) == []
    assert not LoggedEvent.objects.exists()


def test_consent_for_another_purpose_is_not_enough(backend):
    client = consenting_browser("custom", purposes=["analytics"])
    assert post(client, batch("click")).json() == {"recorded": 0}
    assert not client_events().exists()


def test_a_bot_is_ignored(backend):
    client = consenting_browser()
    client.defaults["HTTP_USER_AGENT"] = BOT_UA
    response = post(client, batch("click"))
    assert response.status_code == 202
    assert response.json() == {"recorded": 0}
    assert not client_events().exists()


# -- refusals: the whole batch, with a message ----------------------------------------------


def _refused(backend, response, status, fragment):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    message = response.json()["error"]
    assert fragment.lower() in message.lower(), message
    assert not client_events().exists()
    key = visitor_key()
    assert profile(backend, key) is None
    assert not backend.client.exists(f"{backend.prefix}:f:{key}")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (batch("click", "Not A Name"), "event name"),
        (batch("click", 42), "events[1].name"),
        (
            {"events": [{"name": "click"}, {"name": "click", "properties": {"a": {"b": 1}}}]},
            "must be a string, number, boolean or null",
        ),
        ({"events": [{"name": "click", "properties": {"tags": ["a"]}}]}, "'tags'"),
        ({"events": [{"name": "click", "properties": ["a"]}]}, "must be an object"),
        ({"events": [{"name": "click", "properties": {"bad key": 1}}]}, "property name"),
        ({"events": [{"name": "click", "event_id": "short"}]}, "event_id"),
        ({"events": [{"name": "click", "event_id": "has spaces in it"}]}, "event id"),
        ({"events": [{"name": "click", "event_id": "x" * 65}]}, "event_id"),
        ({"events": [{"name": "click", "event_id": 1234567890}]}, "event_id"),
        ({"events": [{"name": "click"}] * 51}, "no more than 50"),
        ({"events": {"name": "click"}}, "expected a list"),
        ({"events": ["click"]}, "events[0]"),
        ({"events": None}, "events"),
        ({}, "events: this field is required"),
        ([{"name": "click"}], "expected a dictionary"),
    ],
)
def test_an_invalid_batch_is_refused_whole(backend, body, fragment):
    client = consenting_browser()
    _refused(backend, post(client, body), 400, fragment)


@pytest.mark.parametrize("who", ["undecided", "refused", "bot", "consented bot"])
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"events": [{"name": "cl\\u0000ick"}]}', "NUL"),
        (batch("Not A Name"), "event name"),
        ({"events": "click"}, "expected a list"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_batch_is_a_400_whoever_sends_it(backend, who, body, fragment):
    """Validation comes before the question of whether anything is recorded: a visitor
    without consent and a bot get the same 400 as a consented visitor, never a 202 that
    hides the mistake."""
    client = consenting_browser() if who == "consented bot" else browser()
    if who == "refused":
        client.post("/consent/", {"action": "reject_all"})
    if who.endswith("bot"):
        client.defaults["HTTP_USER_AGENT"] = BOT_UA
    response = post(client, body)
    assert response.status_code == 400, response.content
    assert fragment.lower() in response.json()["error"].lower()
    assert not client_events().exists()
    # and a good batch from the same sender is still accepted without recording anything
    assert post(client, batch("click")).json() == {"recorded": 0}


@pytest.mark.parametrize("raw", ["{not json", '{"events": [NaN]}', "\xff\xfe", "", "[" * 5000])
def test_malformed_json_is_a_400_not_a_500(backend, raw):
    client = consenting_browser()
    data = raw.encode("latin-1") if raw == "\xff\xfe" else raw
    response = post(client, data, content_type="text/plain;charset=UTF-8")
    _refused(backend, response, 400, "" if raw == "" else "not valid JSON")


def test_an_oversized_body_is_refused(backend):
    client = consenting_browser()
    event = {"name": "click", "properties": {f"p{i}": "x" * 500 for i in range(32)}}
    body = json.dumps({"events": [event]})
    assert len(body) > MAX_BODY_BYTES
    _refused(backend, post(client, body), 413, "larger than")


def test_a_content_length_over_the_limit_is_refused_before_reading(backend):
    client = consenting_browser()
    response = post(client, batch("click"), CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))
    _refused(backend, response, 413, "larger than")


def test_the_body_is_read_with_a_bound_whatever_the_header_says():
    with pytest.raises(RequestTooLarge):
        JSONParser().parse(io.BytesIO(b" " * (MAX_BODY_BYTES + 1)))
    assert JSONParser().parse(io.BytesIO(b'{"events": []}')) == {"events": []}


def test_an_event_too_large_once_encoded_is_refused(backend):
    client = consenting_browser()
    event = {"name": "click", "properties": {f"p{i}": "é" * 200 for i in range(20)}}
    body = json.dumps({"events": [event]}, ensure_ascii=False).encode()
    assert len(body) <= MAX_BODY_BYTES
    _refused(backend, post(client, body), 400, "bytes once encoded")


def test_other_content_types_and_methods_are_refused(backend):
    client = consenting_browser()
    response = client.post(URL, {"events": "click"})  # a form post
    assert response.status_code == 415
    assert "error" in response.json()
    response = client.get(URL)
    assert response.status_code == 405
    assert "GET" in response.json()["error"]
    assert not client_events().exists()


# -- same origin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "http://testserver.evil.example"},
        {"HTTP_ORIGIN": "https://testserver"},  # another scheme is another origin
        {"HTTP_ORIGIN": "null"},
        {"HTTP_REFERER": "https://evil.example/page"},
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": "http://testserver/"},
    ],
)
def test_a_cross_origin_request_is_forbidden(backend, headers):
    client = consenting_browser()
    _refused(backend, post(client, batch("click"), **headers), 403, "cross-origin")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "http://TestServer:80"},
        {"HTTP_REFERER": "http://testserver/guides/"},
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://testserver"},
        {},
    ],
)
def test_a_same_origin_request_is_accepted_without_a_csrf_token(backend, headers):
    from django.test import Client

    client = consenting_browser()
    strict = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=client.defaults["HTTP_USER_AGENT"])
    strict.cookies = client.cookies
    assert post(strict, batch("click"), **headers).json() == {"recorded": 1}


# -- rate limit -----------------------------------------------------------------------------


def test_requests_beyond_the_rate_are_throttled_per_client(backend, settings):
    settings.SEGMENTS_EVENT_RATE = "3/min"
    cache.clear()
    client = consenting_browser()
    for _ in range(3):
        assert post(client, batch("click")).status_code == 202
    response = post(client, batch("click"))
    assert response.status_code == 429
    assert "throttled" in response.json()["error"]
    assert int(response["Retry-After"]) > 0
    # Another address has its own allowance; without consent it still counts but stores nothing.
    assert post(browser(), batch("click"), REMOTE_ADDR="10.1.2.3").status_code == 202
    assert client_events().count() == 3


def test_the_throttle_never_keeps_the_address(settings):
    request = RequestFactory().post(URL, REMOTE_ADDR="203.0.113.7")
    key = ClientRateThrottle().get_cache_key(request, None)
    assert "203.0.113.7" not in key
    other = RequestFactory().post(URL, REMOTE_ADDR="203.0.113.8")
    assert key != ClientRateThrottle().get_cache_key(other, None)
    settings.CONSENT_HASH_KEY = "another-hash-key-for-this-test-only-0123456789"
    assert key != ClientRateThrottle().get_cache_key(request, None)


def test_the_rate_limit_can_be_switched_off(backend, settings):
    settings.SEGMENTS_EVENT_RATE = settings.SEGMENTS_EVENT_VISITOR_RATE = None
    client = consenting_browser()
    assert all(post(client, {"events": []}).status_code == 202 for _ in range(130))


# -- the tracker ----------------------------------------------------------------------------


def test_the_tracker_is_a_static_file_and_the_demo_loads_it():
    path = finders.find("segments/tracker.js")
    assert path is not None
    with open(path, encoding="utf-8") as f:
        source = f.read()
    assert "sendBeacon" in source and "data-endpoint" in source
    page = browser().get("/").content.decode()
    assert 'src="/static/segments/tracker.js"' in page
    assert f'data-endpoint="{URL}"' in page
    assert 'data-track="click"' in page


def test_a_lone_surrogate_in_a_property_is_a_400_not_a_500(backend):
    client = consenting_browser()
    body = '{"events": [{"name": "click", "properties": {"label": "bad \\ud800 text"}}]}'
    _refused(backend, post(client, body), 400, "unpaired surrogate")  # tailored.jsoninput
