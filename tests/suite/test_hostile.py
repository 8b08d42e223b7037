"""Hostile input, finding by finding: every one a clear 4xx in the error envelope, never a 500,
and nothing written. Real PostgreSQL and Redis.

The property-based half (random JSON, Unicode, sizes and depths against every reader of
outside input) is tests/suite/test_hostile_properties.py; the HTTP API against its own OpenAPI
schema is tests/suite/test_schemathesis.py.
"""

import json

import pytest
from django.contrib.auth.models import Group
from django.core import checks
from django.test import Client, override_settings
from django.urls import reverse
from wagtail.models import Page, PageViewRestriction

from cms_blocks.forms import SegmentForm
from consent.models import ConsentRecord
from segments.models import LoggedEvent, Segment
from tests.builders import (
    browser,
    consenting_browser,
    demo_site,
    home_page,
    page_variant,
    personalised_page,
    segment,
)
from tests.cms_blocks.helpers import login

pytestmark = pytest.mark.services

DEEP = "[" * 5000 + "]" * 5000  # 10 KB: under every body bound, past the interpreter's recursion
DEEP_SMALL = "[" * 1500 + "]" * 1500  # under the consent endpoint's 4 KiB
DUPLICATE_NAME = '{"events": [{"name": "click", "name": "purchase"}]}'


def stream_length(backend) -> int:
    return sum(backend.client.xlen(backend._stream(p)) for p in range(backend.partitions))


def written(backend) -> tuple:
    """Everything a request could write: consent records, logged events, segments, the stream
    and the profiles."""
    return (
        ConsentRecord.objects.count(),
        LoggedEvent.objects.count(),
        Segment.objects.count(),
        stream_length(backend),
        backend.profile_count(),
    )


def refused(response, status=400, fragment=""):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    message = response.json()["error"]
    assert fragment.lower() in message.lower(), message
    return message


# -- one JSON reader -------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deeply_nested_json_is_a_400_on_the_consent_and_event_endpoints(backend):
    demo_site()
    client = consenting_browser()
    before = written(backend)
    refused(
        client.post("/consent/", DEEP_SMALL, content_type="application/json"),
        fragment="levels deep",
    )
    body = '{"events": ' + DEEP + "}"
    refused(
        client.post(
            "/api/events/", body, content_type="application/json", HTTP_ORIGIN="http://testserver"
        ),
        fragment="levels deep",
    )
    assert written(backend) == before


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_with_a_duplicate_key_is_refused_not_last_one_wins(backend):
    demo_site()
    client = consenting_browser()
    before = written(backend)
    for content_type in ("application/json", "text/plain;charset=UTF-8"):  # sendBeacon too
        response = client.post(
            "/api/events/",
            DUPLICATE_NAME,
            content_type=content_type,
            HTTP_ORIGIN="http://testserver",
        )
        refused(response, fragment="'name' appears twice")
    assert written(backend) == before


@pytest.mark.django_db
def test_the_rule_check_refuses_deep_duplicate_and_nan_json(backend):
    editor = login("editor", superuser=True)
    url = reverse("cms_blocks_admin:rule_check")
    before = written(backend)
    for body, fragment in [
        ('{"rule": ' + DEEP + "}", "levels deep"),
        ('{"rule": {"type": "event_count", "type": "all"}}', "appears twice"),
        ('{"rule": {"type": "event_count", "min": NaN}}', "NaN"),
        ('{"rule": {"type": "context", "value": "\\u0000"}}', "NUL"),
    ]:
        refused(editor.post(url, body, content_type="application/json"), fragment=fragment)
    assert written(backend) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        (DEEP, "levels deep"),
        ('{"type": "event_count", "event": "page_view", "event": "x", "min": 1}', "twice"),
        ('{"type": "event_count", "event": "page_view", "min": Infinity}', "Infinity"),
        ('{"type": "context", "attribute": "path", "op": "eq", "value": "\\u0000"}', "NUL"),
    ],
)
def test_the_segment_form_refuses_hostile_rule_json_with_a_message(rule, fragment):
    form = SegmentForm(data={"name": "X", "slug": "x", "rule": rule, "priority": 0})
    assert not form.is_valid()
    assert fragment in " ".join(form.errors["rule"])
    form.as_div()  # the refused value is shown again without parsing it unsafely
    assert not Segment.objects.exists()


@pytest.mark.django_db
def test_the_segment_form_in_the_admin_refuses_deep_json_without_a_500():
    editor = login("editor", superuser=True)
    url = reverse("wagtailsnippets_segments_segment:add")
    response = editor.post(url, {"name": "X", "slug": "x", "rule": DEEP, "priority": 0})
    assert response.status_code == 200  # the form again, with the message
    assert "levels deep" in response.content.decode()
    assert not Segment.objects.exists()


# -- one safe date range ---------------------------------------------------------------------------
BAD_PERIODS = [
    {"period_to": "9999-12-31"},
    {"period_from": "9999-12-31"},
    {"period_to": "0001-01-01"},
    {"period_from": "0001-01-01", "period_to": "0001-01-02"},
    {"period_from": "99999-01-01"},
    {"period_to": "2026-02-30"},
    {"period_from": "\x00"},
]


def _results_urls():
    return [
        reverse("cms_blocks_results:index"),
        reverse("cms_blocks_results:segment", args=["engaged"]),
        reverse("cms_blocks_block_results:index"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("period", BAD_PERIODS)
@pytest.mark.parametrize("export", [None, "csv", "xlsx"])
def test_an_out_of_range_period_is_a_400_on_every_results_view_and_export(period, export):
    segment("engaged")
    analyst = login("analyst", superuser=True)
    query = {**period, **({"export": export} if export else {})}
    for url in _results_urls():
        response = analyst.get(url, query)
        assert response.status_code == 400, (url, query)
        assert response["Content-Type"].startswith("text/html")  # the reasons, not a file
        assert response.context["filters"].form.errors


@pytest.mark.django_db
@pytest.mark.parametrize("export", [None, "csv", "xlsx"])
def test_a_block_report_for_a_page_that_is_not_an_id_is_a_400(export):
    analyst = login("analyst", superuser=True)
    url = reverse("cms_blocks_block_results:index")
    for page in ("\x00", "1 OR 1=1", "9" * 40):
        query = {"page": page, **({"export": export} if export else {})}
        assert analyst.get(url, query).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("period", [*BAD_PERIODS, {"period_to": "2026-01-01", "p": "\x00"}])
@pytest.mark.parametrize("export", [None, "csv"])
def test_the_privacy_reports_show_a_broken_period_as_a_message(period, export):
    officer = login("officer", superuser=True)
    query = {**period, **({"export": export} if export else {})}
    response = officer.get(reverse("consent_privacy:decisions"), query)
    assert response.status_code in (200, 400)
    log = {
        k.replace("period_from", "created_at_after").replace("period_to", "created_at_before"): v
        for k, v in query.items()
    }
    for zone in ("UTC", "Pacific/Kiritimati", "America/Adak"):
        with override_settings(TIME_ZONE=zone):
            response = officer.get(reverse("consent_privacy:log"), log)
        assert response.status_code in (200, 400), (zone, log)


# -- the schema view's query -----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "version=%00",
        "version=%0a",
        "version=%0d%0aX-Injected:%201",
        "lang=%00",
        "lang=zz",
        "format=%00",
        "format=json&format=yaml",
    ],
)
def test_the_schema_view_refuses_garbage_in_its_query_with_a_400(query):
    response = Client().get(f"/api/schema/?{query}")
    refused(response)
    assert not any(ch in value for _name, value in response.items() for ch in "\x00\r\n")


@pytest.mark.django_db
def test_the_schema_view_still_serves_what_it_documents():
    for query in ("", "format=json", "format=yaml", "lang=fr", "cache=123"):
        assert Client().get(f"/api/schema/?{query}").status_code == 200, query


# -- the headless page -----------------------------------------------------------------------------
def page_api(client, pk):
    return client.get(f"/api/personalization/pages/{pk}/")


@pytest.fixture
def pages(db):
    demo_site()
    original = personalised_page(slug="members", title="Members only", default="SECRET body")
    variant = page_variant(original, "engaged", "Variant body", title="Public variant")
    return original, variant


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_password_protected_original_is_never_served_through_its_public_variant(pages):
    original, variant = pages
    assert page_api(browser(), variant.pk).status_code == 200  # before the restriction
    restriction = PageViewRestriction.objects.create(
        page=original, restriction_type=PageViewRestriction.PASSWORD, password="secret"
    )
    for pk in (variant.pk, original.pk):
        response = page_api(browser(), pk)
        message = refused(response, 404)
        assert "SECRET" not in response.content.decode() and "Members" not in message
    # Once the password is entered in this session, as on the site.
    client = browser()
    session = client.session
    session[PageViewRestriction.passed_view_restrictions_session_key] = [restriction.pk]
    session.save()
    assert page_api(client, original.pk).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_login_and_group_restricted_pages_only_for_those_allowed(pages):
    original, _variant = pages
    PageViewRestriction.objects.create(page=original, restriction_type=PageViewRestriction.LOGIN)
    refused(page_api(browser(), original.pk), 404)
    assert page_api(login("member"), original.pk).status_code == 200

    original.view_restrictions.all().delete()
    restriction = PageViewRestriction.objects.create(
        page=original, restriction_type=PageViewRestriction.GROUPS
    )
    staff = Group.objects.create(name="Staff")
    restriction.groups.add(staff)
    refused(page_api(login("outsider"), original.pk), 404)
    insider = login("insider")
    insider_user = insider.session["_auth_user_id"]
    staff.user_set.add(insider_user)
    assert page_api(insider, original.pk).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_root_unpublished_and_siteless_pages_are_not_served(pages):
    original, _variant = pages
    root = Page.get_first_root_node()
    refused(page_api(browser(), root.pk), 404)  # Wagtail's root: no site serves it
    orphan = root.add_child(instance=Page(title="Outside every site", slug="orphan", live=True))
    refused(page_api(browser(), orphan.pk), 404)
    draft = personalised_page(slug="draft", title="Draft", live=False)
    refused(page_api(browser(), draft.pk), 404)
    original.unpublish()
    refused(page_api(browser(), original.pk), 404)
    assert page_api(browser(), home_page().pk).status_code == 200


# -- the schema says what the server does ----------------------------------------------------------
def _schema():
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.django_db
def test_every_operation_documents_the_refusals_it_can_answer():
    schema = _schema()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            if method == "post":
                assert {"400", "413", "415"} <= codes, (path, method)
            if "{" in path:
                assert "404" in codes, (path, method)
    events = schema["paths"]["/api/events/"]["post"]["responses"]
    assert {"403", "429"} <= set(events)
    assert "Retry-After" in events["429"]["headers"]
    assert events["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


@pytest.mark.django_db
def test_the_event_schema_says_what_the_validator_checks():
    from segments import events

    event = _schema()["components"]["schemas"]["Event"]["properties"]
    assert event["name"]["minLength"] == 1 and event["name"]["maxLength"] == 64
    assert event["name"]["pattern"] == "^[a-z][a-z0-9_]{0,63}$"
    properties = event["properties"]
    assert properties["maxProperties"] == events.MAX_PROPERTIES
    assert properties["propertyNames"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    values = properties["additionalProperties"]["oneOf"]
    assert {
        "type": "string",
        "maxLength": events.MAX_STRING,
        "pattern": "^[^\\u0000\\ud800-\\udfff]*$",
    } in values


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("name", ["", "Click", "1click", "click\n", "a" * 65, "clíck"])
def test_an_event_name_the_schema_refuses_the_server_refuses(backend, name):
    demo_site()
    client = consenting_browser()
    before = written(backend)
    body = json.dumps({"events": [{"name": name}]})
    response = client.post(
        "/api/events/", body, content_type="application/json", HTTP_ORIGIN="http://testserver"
    )
    refused(response, fragment="name")
    assert written(backend) == before


# -- rate limits -----------------------------------------------------------------------------------
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "x"}}


def _deploy_ids():
    return {m.id for m in checks.run_checks(include_deployment_checks=True)}


@pytest.mark.parametrize("caches", [LOCMEM, DUMMY])
def test_a_process_local_rate_limit_cache_is_a_deployment_warning(settings, caches):
    settings.CACHES = caches
    settings.DEBUG = False
    assert {"consent.W006", "segments.W003"} <= _deploy_ids()
    settings.CONSENT_RATE = None
    settings.SEGMENTS_EVENT_RATE = settings.SEGMENTS_EVENT_VISITOR_RATE = None
    assert not {"consent.W006", "segments.W003"} & _deploy_ids()


def test_a_shared_cache_or_debug_is_no_warning(settings):
    settings.CACHES = REDIS
    settings.DEBUG = False
    assert not {"consent.W006", "segments.W003"} & _deploy_ids()
    settings.CACHES = LOCMEM
    settings.DEBUG = True
    assert not {"consent.W006", "segments.W003"} & _deploy_ids()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_event_endpoint_is_rate_limited_per_visitor_whatever_the_address(backend, settings):
    demo_site()
    settings.SEGMENTS_EVENT_RATE = "5/min"  # per address
    settings.SEGMENTS_EVENT_VISITOR_RATE = "3/min"
    visitor = consenting_browser()
    neighbour = consenting_browser()  # another visitor behind the same address

    def send(client, address):
        return client.post(
            "/api/events/",
            json.dumps({"events": []}),
            content_type="application/json",
            HTTP_ORIGIN="http://testserver",
            REMOTE_ADDR=address,
        )

    assert [send(visitor, f"10.0.0.{n}").status_code for n in range(3)] == [202] * 3
    throttled = send(visitor, "10.0.0.9")  # a fourth address: still the same visitor
    refused(throttled, 429)
    assert int(throttled["Retry-After"]) > 0
    assert send(neighbour, "10.0.0.1").status_code == 202  # counted as who they are
    # The per-address limit still holds for clients without a visitor key.
    anonymous = [send(browser(), "10.0.0.7").status_code for _ in range(6)]
    assert anonymous == [202] * 5 + [429]


@pytest.mark.django_db
def test_the_model_form_refuses_hostile_json_in_its_json_fields():
    pytest.importorskip("sklearn")  # segments_ml is installed with the [ml] extra only
    from segments_ml.models import MLModel

    editor = login("editor", superuser=True)
    url = reverse("ml_models:add")
    base = {
        "name": "X",
        "slug": "x",
        "kind": "propensity",
        "population_event": "purchase",
        "features": "[]",
        "target": '{"event": "purchase", "horizon_days": 30}',
        "params": "{}",
        "training_days": 90,
        "retrain_days": 7,
        "drift_threshold": 0.2,
    }
    for field, value, fragment in [
        ("params", DEEP, "levels deep"),
        ("target", '{"event": "purchase", "event": "signup"}', "appears twice"),
        ("features", '["\\u0000"]', "NUL"),
    ]:
        response = editor.post(url, {**base, field: value})
        assert response.status_code == 200, (field, response.status_code)
        assert fragment in response.content.decode(), field
    assert not MLModel.objects.exists()
