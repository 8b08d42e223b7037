"""wagtail-personalisation's acceptance cases for segment rules, as tests of this project.

Ported from its ``tests/unit``: ``test_rules_query.py``, ``test_rules_device.py``,
``test_rules_mixed.py``, ``test_rules_time.py``, ``test_rules_day.py``,
``test_rules_country_origin.py``, ``test_rules_visitcount.py`` and ``test_adapter_session.py``.
Each test is named after the behaviour it checks and drives the real request path (the demo
site, real PostgreSQL and Redis, Celery eager): where wagtail-personalisation reads
``client.session['segments']`` this reads the segments the page lists for the visitor. Its
rules are rows of one model per kind; here they are conditions of a rule tree:

- ``QueryRule(parameter, value)`` → ``{"type": "query", "param", "op": "eq", "value"}``;
  several rules of a segment → an ``all`` group (``match_any``: an ``any`` group);
- ``DeviceRule`` → a ``context`` condition on ``device``; ``TimeRule`` → ``hour`` between two
  hours (this project decides time by the hour); ``DayRule`` → ``weekday``;
- ``ReferralRule(regex)`` → a ``context`` condition on ``referrer`` with ``regex``: only the
  referring site's host is kept (never its path or query), so the referrer in these tests is a
  URL, where wagtail-personalisation matched the raw header;
- ``OriginCountryRule`` → a ``context`` condition on ``country``;
- ``VisitCountRule(counted_page, operator, count)`` → ``page_visits`` on the page's path;
- ``Segment.persistent`` → ``persist_for`` (how long); non-persistent is the default.

Cases that do not apply here, and why:

- ``test_*_rule_create`` (day, device, referral, time, query, factories): they check that a
  factory stores a model's fields; rules here are JSON validated when saved (their validation
  is tested in tests/segments).
- ``test_rules_country_origin``: ``test_test_user_calls_get_country``,
  ``test_get_country_calls_all_methods``, ``test_get_geoip_module_disabled/enabled`` check which
  internal methods are called (mocks); their behaviour (headers tried in order, GeoIP only
  when configured and only when no header says) is tested below against a real GeoIP2
  database.
- ``test_rules_visitcount``: ``test_visit_count_call_test_user_with_user``,
  ``..._with_user_or_request_fails``, ``test_get_column_header``,
  ``test_get_user_info_string_returns_count``: they evaluate a rule for a Django user by
  finding that user's session; visitors here are pseudonymous (no user, no session), and the
  static segments' export lists pseudonymous keys (tests/acceptance, static segments).
- ``test_adapter_session``: ``test_get_segments``, ``test_get_segments_session``,
  ``test_get_segment_by_id``: the session adapter's storage API (segments are stored in the
  fast store here, read through ``request.segments``); ``test_update_visit_count``: a per
  segment counter of visits by members, which this project reports as segment sizes and
  results (tests/cms_blocks/test_results.py).
"""

from datetime import UTC, datetime

import pytest
import time_machine

from segments.api import get_backend
from segments.models import Segment
from tests.acceptance.helpers import consenting_visitor, key_of, segments_of, visitor
from tests.builders import demo_site, segment

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

IPAD_UA = "Mozilla/5.0(iPad; U; CPU iPhone OS 3_2 like Mac OS X)"  # as in its device tests


@pytest.fixture(autouse=True)
def _site(backend):
    demo_site()


def query(param: str, value: str) -> dict:
    return {"type": "query", "param": param, "op": "eq", "value": value}


def context(attribute: str, op: str, value) -> dict:
    return {"type": "context", "attribute": attribute, "op": op, "value": value}


def between_hours(start: int, end: int) -> dict:
    """TimeRule(start, end): from ``start``:00 to ``end``:00."""
    return {
        "type": "all",
        "conditions": [context("hour", "gte", start), context("hour", "lt", end)],
    }


REFERRAL = context("referrer", "regex", "test.test")


# -- test_rules_query.py ------------------------------------------------------------------------


def test_a_query_parameter_puts_the_visitor_in_the_segment():
    segment("query", query("query", "value"))
    assert "query" in segments_of(visitor().get("/?query=value"))
    assert "query" not in segments_of(visitor().get("/?query=other"))


def test_other_query_parameters_do_not_stop_a_query_rule_matching():
    segment("query", query("query", "value"))
    assert "query" in segments_of(visitor().get("/?test=test&query=value"))


def test_a_segment_of_two_query_rules_needs_both_parameters():
    segment(
        "multiple-queries",
        {"type": "all", "conditions": [query("test", "test"), query("query", "value")]},
    )
    assert "multiple-queries" in segments_of(visitor().get("/?test=test&query=value"))
    assert "multiple-queries" not in segments_of(visitor().get("/?test=test"))


def test_a_match_any_segment_needs_only_one_of_its_query_rules():
    segment(
        "match-any", {"type": "any", "conditions": [query("test", "test"), query("test2", "test2")]}
    )
    assert "match-any" in segments_of(visitor().get("/?test=test"))
    assert "match-any" not in segments_of(visitor().get("/?test3=test3"))


def test_a_persistent_segment_keeps_a_consenting_visitor_after_the_parameter_is_gone():
    segment("persistent", query("test", "test"), persist_for="30d")
    client = consenting_visitor()
    assert "persistent" in segments_of(client.get("/?test=test"))
    assert "persistent" in segments_of(client.get("/"))
    assert "persistent" in segments_of(client.get("/guides/"))


def test_a_persistent_segment_stores_nothing_for_a_visitor_without_consent():
    segment("persistent", query("test", "test"), persist_for="30d")
    client = visitor()
    assert "persistent" in segments_of(client.get("/?test=test"))  # decided in the request
    assert "persistent" not in segments_of(client.get("/"))  # ... and forgotten after it
    assert get_backend().profile_count() == 0


def test_a_non_persistent_segment_drops_the_visitor_when_the_parameter_is_gone():
    segment("non-persistent", query("test", "test"))
    client = consenting_visitor()
    assert "non-persistent" in segments_of(client.get("/?test=test"))
    assert "non-persistent" not in segments_of(client.get("/"))


# -- test_rules_device.py -----------------------------------------------------------------------


def test_an_ipad_is_in_a_tablet_segment():
    segment("device-only", context("device", "eq", "tablet"))
    assert "device-only" in segments_of(visitor(HTTP_USER_AGENT=IPAD_UA).get("/"))


def test_an_ipad_is_not_in_a_mobile_segment():
    segment("no-device", context("device", "eq", "mobile"))
    assert segments_of(visitor(HTTP_USER_AGENT=IPAD_UA).get("/")) == set()


# -- test_rules_mixed.py, test_rules_time.py, test_rules_day.py -----------------------------------


def test_a_visitor_matching_no_segment_is_in_none():
    response = visitor().get("/")
    assert response.status_code == 200
    assert segments_of(response) == set()


def test_a_referring_site_puts_the_visitor_in_the_segment():
    segment("referral", REFERRAL)
    assert "referral" in segments_of(visitor().get("/", HTTP_REFERER="http://test.test/a?b=c"))
    assert "referral" not in segments_of(visitor().get("/", HTTP_REFERER="http://other.example/"))


@pytest.mark.parametrize(
    ("at", "referrer", "member"),
    [
        ("10:00", True, True),  # test_time_and_referral_segment
        ("07:00", True, False),  # test_no_time_but_referral_segment
        ("09:00", False, False),  # test_time_but_no_referral_segment
    ],
)
def test_a_segment_of_a_time_and_a_referrer_needs_both(at, referrer, member):
    segment("both", {"type": "all", "conditions": [between_hours(8, 23), REFERRAL]})
    hour, minute = map(int, at.split(":"))
    headers = {"HTTP_REFERER": "http://test.test/"} if referrer else {}
    with time_machine.travel(datetime(2024, 5, 6, hour, minute, tzinfo=UTC), tick=False):
        assert ("both" in segments_of(visitor().get("/", **headers))) is member


def test_a_time_of_day_segment_matches_inside_its_hours():
    segment("time-only", between_hours(8, 23))
    with time_machine.travel(datetime(2024, 5, 6, 10, tzinfo=UTC), tick=False):
        assert "time-only" in segments_of(visitor().get("/"))
    with time_machine.travel(datetime(2024, 5, 6, 23, 30, tzinfo=UTC), tick=False):
        assert "time-only" not in segments_of(visitor().get("/"))


def test_a_day_of_the_week_segment_matches_on_that_day():
    segment("day-only", context("weekday", "eq", 6))  # Sunday
    with time_machine.travel(datetime(2017, 1, 1, 12, tzinfo=UTC), tick=False):  # a Sunday
        assert "day-only" in segments_of(visitor().get("/"))
    with time_machine.travel(datetime(2017, 1, 2, 12, tzinfo=UTC), tick=False):
        assert "day-only" not in segments_of(visitor().get("/"))


# -- test_rules_country_origin.py -----------------------------------------------------------------


@pytest.fixture
def geoip(tmp_path, settings):
    """A real GeoIP2 country database: 123.120.0.0/16 is in Sweden, 173.254.89.0/24 in Britain."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["123.120.0.0/16"]), {"country": {"iso_code": "SE"}})
    writer.insert_network(IPSet(["173.254.89.0/24"]), {"country": {"iso_code": "GB"}})
    writer.to_db_file(str(tmp_path / "GeoLite2-Country.mmdb"))
    settings.GEOIP_PATH = str(tmp_path)


def test_a_cloudflare_country_header_puts_the_visitor_in_the_country_segment():
    segment("gb", context("country", "eq", "GB"))
    assert "gb" in segments_of(visitor(HTTP_CF_IPCOUNTRY="GB").get("/"))
    assert "gb" not in segments_of(visitor(HTTP_CF_IPCOUNTRY="NL").get("/"))
    assert "gb" not in segments_of(visitor().get("/"))  # no header: no country


def test_a_cloudfront_country_header_puts_the_visitor_in_the_country_segment():
    segment("se", context("country", "eq", "SE"))
    assert "se" in segments_of(visitor(HTTP_CLOUDFRONT_VIEWER_COUNTRY="SE").get("/"))
    assert "se" not in segments_of(visitor(HTTP_CLOUDFRONT_VIEWER_COUNTRY="NL").get("/"))


def test_the_country_comes_from_the_geoip_database_when_no_header_says(geoip):
    segment("se", context("country", "eq", "SE"))
    segment("nl", context("country", "eq", "NL"))
    assert segments_of(visitor(REMOTE_ADDR="123.120.0.2").get("/")) == {"se"}
    assert segments_of(visitor(REMOTE_ADDR="173.254.89.34").get("/")) == set()
    # Cloudflare's header is preferred over a look-up.
    assert segments_of(visitor(REMOTE_ADDR="123.120.0.2", HTTP_CF_IPCOUNTRY="NL").get("/")) == {
        "nl"
    }


def test_without_a_geoip_database_the_address_gives_no_country():
    segment("se", context("country", "eq", "SE"))
    assert segments_of(visitor(REMOTE_ADDR="123.120.0.2").get("/")) == set()


def test_the_country_is_recorded_and_the_address_never(geoip):
    client = consenting_visitor()
    client.get("/guides/", REMOTE_ADDR="123.120.0.2")
    from segments.models import LoggedEvent

    view = LoggedEvent.objects.filter(name="page_view").latest("occurred_at")
    assert view.properties["country"] == "SE"
    assert "123.120" not in repr(view.properties)


# -- test_rules_visitcount.py, test_adapter_session.py ------------------------------------------


def test_views_of_each_page_are_counted_for_a_consenting_visitor():
    import orjson

    client = consenting_visitor()
    for path in ("/", "/", "/guides/"):
        assert client.get(path).status_code == 200
    profile = orjson.loads(get_backend().visitor_data(key_of(client)).profile)
    assert {p: n for p, (n, _) in profile["v"].items()} == {"/": 2, "/guides/": 1}


def test_a_visitor_who_viewed_a_page_three_times_is_in_the_visit_count_segment():
    segment("pricing", {"type": "page_visits", "path": "/guides/", "min": 3})
    client = consenting_visitor()
    for _ in range(3):
        assert "pricing" not in segments_of(client.get("/guides/"))
    assert "pricing" in segments_of(client.get("/"))
    other = consenting_visitor()
    for _ in range(3):
        other.get("/")
    assert "pricing" not in segments_of(other.get("/"))


def test_a_visit_count_rule_without_a_page_is_refused():
    with pytest.raises(Exception) as refused:
        Segment(name="x", slug="x", rule={"type": "page_visits", "min": 3}).full_clean()
    assert "give either 'path' or 'path_prefix'" in str(refused.value)


def test_a_disabled_segment_no_longer_applies_on_the_next_request():
    mobile = segment("segment-1", context("device", "eq", "desktop"))
    segment("segment-2", {"type": "context", "attribute": "language", "op": "exists"})
    client = visitor(HTTP_ACCEPT_LANGUAGE="en")
    assert segments_of(client.get("/")) == {"segment-1", "segment-2"}
    mobile.enabled = False
    mobile.save()
    assert segments_of(client.get("/")) == {"segment-2"}


def test_a_deleted_segments_stored_membership_is_ignored_and_the_page_still_serves():
    engaged = Segment.objects.get(slug="engaged")
    client = consenting_visitor()
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert "engaged" in segments_of(client.get("/"))
    engaged.delete()
    response = client.get("/")
    assert response.status_code == 200
    assert "engaged" not in segments_of(response)


def test_the_geoip_lookup_trusts_x_forwarded_for_only_behind_the_configured_proxies(
    geoip, settings
):
    """test_utils.py: ``test_get_client_ip_with_remote_addr`` / ``..._with_x_forwarded_for``."""
    from rest_framework.settings import api_settings

    segment("se", context("country", "eq", "SE"))
    behind_proxy = {"REMOTE_ADDR": "10.0.23.24", "HTTP_X_FORWARDED_FOR": "123.120.0.2"}
    assert segments_of(visitor(REMOTE_ADDR="123.120.0.2").get("/")) == {"se"}
    assert segments_of(visitor(**behind_proxy).get("/")) == set()  # a forgeable header
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    api_settings.reload()
    try:
        assert segments_of(visitor(**behind_proxy).get("/")) == {"se"}
    finally:
        del settings.REST_FRAMEWORK
        api_settings.reload()
