"""What a request says about the visitor (segments.events.request) and what the profile keeps
of it: device classes from client hints and the tracker's touch report, the country from a
CDN's header or a GeoIP2 database (the address never kept), the query parameters rules name
(and no others), and per-page visit counts (bounded)."""

import pytest
from django.test import RequestFactory

from segments.events.request import device_class, request_context, request_country
from segments.profiles.features import MAX_VISIT_COUNTS, Profile
from segments.rules import compile_rule
from tests.builders import segment

IPAD_DESKTOP_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
CHROME_DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
rf = RequestFactory()


# -- device classes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ua", "mobile", "platform", "factors", "expected"),
    [
        (CHROME_DESKTOP_UA, "", "", "", "desktop"),
        ("Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X)", "", "", "", "tablet"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile", "", "", "", "mobile"),
        # Chromium's default hints win over a user agent that says "desktop":
        (CHROME_DESKTOP_UA, "?1", '"Android"', "", "mobile"),  # a phone
        (CHROME_DESKTOP_UA, "?0", '"Android"', "", "tablet"),  # an Android tablet
        (CHROME_DESKTOP_UA, "?0", '"iOS"', "", "tablet"),
        (CHROME_DESKTOP_UA, "?0", '"Windows"', "", "desktop"),
        # the form factors hint, for sites that ask for it, names the tablet outright
        (IPAD_DESKTOP_UA, "?0", '"macOS"', '"Tablet", "Touch"', "tablet"),
        # an iPad presenting itself as desktop Safari, without hints: the request cannot tell
        (IPAD_DESKTOP_UA, "", "", "", "desktop"),
    ],
)
def test_device_classes_follow_client_hints_before_the_user_agent(
    ua, mobile, platform, factors, expected
):
    assert device_class(ua, mobile, platform, factors) == expected


@pytest.mark.django_db
def test_the_request_context_reads_the_client_hints():
    request = rf.get(
        "/",
        HTTP_USER_AGENT=CHROME_DESKTOP_UA,
        HTTP_SEC_CH_UA_MOBILE="?0",
        HTTP_SEC_CH_UA_PLATFORM='"Android"',
    )
    assert request_context(request)["device"] == "tablet"


def test_the_trackers_touch_report_makes_an_ipad_presenting_as_a_mac_a_tablet():
    profile = Profile()
    profile.apply("page_view", 100.0, (1, 0), {"path": "/", "device": "desktop"})
    assert profile.context["device"] == "desktop"
    profile.apply("device_hint", 101.0, (2, 0), {"touch_points": 5})
    assert profile.context["device"] == "tablet"
    # Later page views of the same browser still say "desktop" (its user agent): it stays one.
    profile.apply("page_view", 102.0, (3, 0), {"path": "/", "device": "desktop"})
    assert profile.context["device"] == "tablet"
    assert profile.engagement == pytest.approx(2.0, rel=1e-5)  # the report is not engagement
    restored = Profile.from_dict(profile.to_dict())
    restored.apply("page_view", 103.0, (4, 0), {"path": "/", "device": "desktop"})
    assert restored.context["device"] == "tablet"
    tablets = compile_rule(
        {"type": "context", "attribute": "device", "op": "eq", "value": "tablet"}
    )
    assert tablets(restored, 104.0).matched
    # A report of no touch screen (or one point: a pen) changes nothing.
    other = Profile()
    other.apply("device_hint", 1.0, (1, 0), {"touch_points": 1})
    other.apply("page_view", 2.0, (2, 0), {"path": "/", "device": "desktop"})
    assert other.context["device"] == "desktop"


# -- country --------------------------------------------------------------------------------------


def test_the_country_comes_from_cloudflare_or_cloudfront():
    assert request_country(rf.get("/", HTTP_CF_IPCOUNTRY="pl")) == "PL"
    assert request_country(rf.get("/", HTTP_CLOUDFRONT_VIEWER_COUNTRY="BY")) == "BY"
    # Cloudflare's header first; its "unknown" (XX) and Tor (T1) codes are no country.
    both = rf.get("/", HTTP_CF_IPCOUNTRY="GB", HTTP_CLOUDFRONT_VIEWER_COUNTRY="NL")
    assert request_country(both) == "GB"
    assert request_country(rf.get("/", HTTP_CF_IPCOUNTRY="XX")) is None
    assert request_country(rf.get("/", HTTP_CF_IPCOUNTRY="T1")) is None
    assert request_country(rf.get("/", REMOTE_ADDR="81.2.69.160")) is None  # no GeoIP set up


def test_a_site_chooses_its_own_country_headers(settings):
    settings.SEGMENTS_COUNTRY_HEADER = "X-Country"
    assert request_country(rf.get("/", HTTP_X_COUNTRY="se", HTTP_CF_IPCOUNTRY="GB")) == "SE"
    settings.SEGMENTS_COUNTRY_HEADER = []
    assert request_country(rf.get("/", HTTP_CF_IPCOUNTRY="GB")) is None


@pytest.fixture
def geoip_database(tmp_path, settings):
    """A real GeoIP2 country database (MaxMind DB format) holding two networks."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True, languages=["en"]
    )
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "SE"}})
    path = tmp_path / "GeoLite2-Country.mmdb"
    writer.to_db_file(str(path))
    settings.GEOIP_PATH = str(tmp_path)
    return path


def test_the_country_comes_from_a_geoip_database_when_the_site_has_one(geoip_database):
    assert request_country(rf.get("/", REMOTE_ADDR="89.160.20.112")) == "SE"
    assert request_country(rf.get("/", REMOTE_ADDR="81.2.69.160")) == "GB"
    assert request_country(rf.get("/", REMOTE_ADDR="10.0.0.1")) is None  # not in it
    assert request_country(rf.get("/", REMOTE_ADDR="not an address")) is None
    # A CDN's header is used before any look-up.
    assert request_country(rf.get("/", REMOTE_ADDR="81.2.69.160", HTTP_CF_IPCOUNTRY="NL")) == "NL"


def test_x_forwarded_for_is_trusted_only_behind_the_configured_proxies(geoip_database, settings):
    forwarded = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "89.160.20.112"}
    assert request_country(rf.get("/", **forwarded)) is None
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        assert request_country(rf.get("/", **forwarded)) == "SE"
    finally:
        del settings.REST_FRAMEWORK
        api_settings.reload()


@pytest.mark.django_db
def test_the_address_is_looked_up_and_never_kept(geoip_database):
    context = request_context(rf.get("/", REMOTE_ADDR="89.160.20.112"))
    assert context["country"] == "SE"
    assert "89.160" not in repr(context)


def test_a_geoip_path_without_a_database_gives_no_country_and_no_error(tmp_path, settings):
    settings.GEOIP_PATH = str(tmp_path / "missing")
    assert request_country(rf.get("/", REMOTE_ADDR="89.160.20.112")) is None


# -- query parameters -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_views_record_only_the_query_parameters_rules_name():
    request = rf.get("/?ref=newsletter&email=bob@example.com&utm_source=mail&q=secret")
    assert "query" not in request_context(request)  # no rule names any parameter
    segment("from-newsletter", rule={"type": "query", "param": "ref", "op": "eq", "value": "x"})
    segment("email", rule={"type": "query", "param": "email", "op": "exists"})
    context = request_context(rf.get("/?ref=newsletter&email=bob@example.com&q=secret"))
    assert context["query"] == "email=%5Bemail%5D&ref=newsletter"  # redacted, q left out
    assert "secret" not in repr(context)


def test_a_query_condition_reads_any_parameter_of_the_request_or_of_a_recorded_page_view():
    newsletter = compile_rule({"type": "query", "param": "ref", "op": "eq", "value": "newsletter"})
    seen = compile_rule({"type": "query", "param": "gclid", "op": "exists"})
    request = rf.get("/?test=test&ref=newsletter&gclid=")
    assert newsletter(Profile(), 0.0, {"query": request.GET}).matched
    assert seen(Profile(), 0.0, {"query": request.GET}).matched  # there, even empty
    assert not seen(Profile(), 0.0, {"query": rf.get("/?ref=x").GET}).matched
    assert not newsletter(Profile(), 0.0, {}).matched
    # In the workers: the parameters recorded with a page view (a query string).
    assert newsletter(Profile(), 0.0, {"query": "ref=newsletter"}).matched
    profile = Profile()
    profile.apply("page_view", 1.0, (1, 0), {"path": "/", "query": "ref=newsletter"})
    outcome = newsletter(profile, 2.0)
    assert outcome.matched
    assert outcome.reasons == ("the query parameter ref is newsletter (= newsletter)",)


@pytest.mark.parametrize("param", ["", "a b", "x" * 65, 3, None])
def test_a_query_condition_needs_a_parameter_name(param):
    from segments.rules import validate_rule

    ((path, message),) = validate_rule({"type": "query", "param": param, "op": "exists"})
    assert path == "param" and "parameter name" in message


# -- visit counts ---------------------------------------------------------------------------------


def test_page_views_are_counted_per_page_and_the_counts_are_bounded():
    profile = Profile()
    for ts, path in enumerate(["/", "/", "/page-1/", "/", "/pricing/"]):
        profile.apply("page_view", float(ts), (ts + 1, 0), {"path": path})
    profile.apply("click", 9.0, (99, 0), {"path": "/pricing/"})  # not a page view
    assert profile.visit_count("/") == 3
    assert profile.visit_count("/page-1/") == 1
    assert profile.visit_count("/pricing/") == 1
    assert profile.visit_count(prefix="/p") == 2
    assert Profile.from_dict(profile.to_dict()).visits == profile.visits
    for n in range(100):
        profile.apply("page_view", 100.0 + n, (100 + n, 0), {"path": f"/article-{n}/"})
    assert len(profile.visits) == MAX_VISIT_COUNTS
    assert "/article-99/" in profile.visits and "/" not in profile.visits  # least recent went


def test_a_page_visits_condition_counts_views_of_a_page():
    three = compile_rule({"type": "page_visits", "path": "/pricing/", "min": 3})
    under = compile_rule({"type": "page_visits", "path_prefix": "/guides/", "min": 2, "max": 3})
    profile = Profile()
    for n in range(2):
        profile.apply("page_view", float(n), (n + 1, 0), {"path": "/pricing/"})
    outcome = three(profile, 10.0)
    assert not outcome.matched
    assert outcome.reasons == ("2 view(s) of the page /pricing/, fewer than 3 (1 short)",)
    profile.apply("page_view", 5.0, (5, 0), {"path": "/pricing/"})
    assert three(profile, 10.0).matched
    for n, path in enumerate(["/guides/a/", "/guides/b/", "/guides/a/", "/guides/c/"]):
        profile.apply("page_view", 20.0 + n, (20 + n, 0), {"path": path})
        assert under(profile, 30.0).matched == (1 <= n <= 2)
    assert under(profile, 30.0).reasons == (
        "4 view(s) of pages under /guides/, more than 3 (1 too many)",
    )


@pytest.mark.parametrize(
    ("node", "where"),
    [
        ({"type": "page_visits", "min": 3}, ""),
        ({"type": "page_visits", "path": "/a/", "path_prefix": "/"}, ""),
        ({"type": "page_visits", "path": "pricing", "min": 3}, "path"),
        ({"type": "page_visits", "path": "/a/", "min": 0}, "min"),
        ({"type": "page_visits", "path": "/a/", "min": 3, "max": 2}, "max"),
    ],
)
def test_a_page_visits_condition_needs_one_page_and_sensible_bounds(node, where):
    from segments.rules import validate_rule

    ((path, _message),) = validate_rule(node)
    assert path == where
