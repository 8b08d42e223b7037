"""The cookie inventory: an entry no response could carry is refused where the inventory is
edited, and never makes a decision fail after it was recorded."""

import pytest
from cookie_consent.models import Cookie, CookieGroup
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client

from consent.models import ConsentRecord
from tests.builders import browser, consenting_browser

pytestmark = pytest.mark.django_db

COOKIE = "tailored_consent"
BAD_NAMES = ["bad name", "bad;name", 'quo"te', "a=b", "é", "(x)", "x\n"]


def _group(varname: str) -> CookieGroup:
    return CookieGroup.objects.get(varname=varname)


@pytest.mark.parametrize("action", ["reject_all", "withdraw", "custom"])
def test_an_invalid_inventory_name_neither_fails_a_decision_nor_half_writes_it(action):
    client = consenting_browser()
    # Written straight to the database, as a fixture, an import or an older version could.
    Cookie.objects.create(cookiegroup=_group("marketing"), name="bad name;")
    Cookie.objects.create(cookiegroup=_group("marketing"), name="_ads", path="/ads;x")
    Cookie.objects.create(cookiegroup=_group("marketing"), name="_fbp", domain=".example.com")
    before = ConsentRecord.objects.count()

    response = client.post("/consent/", {"action": action, "purposes": ["analytics"]})

    assert response.status_code == 303
    assert ConsentRecord.objects.count() == before + 1
    assert response.cookies["_fbp"]["max-age"] == 0
    assert response.cookies["_fbp"]["domain"] == ".example.com"
    assert "bad name;" not in response.cookies and "_ads" not in response.cookies
    assert response.cookies[COOKIE]["max-age"] != 0  # the new decision reached the browser


def test_the_inventory_refuses_invalid_names_paths_and_domains():
    group = _group("marketing")
    for name in BAD_NAMES:
        with pytest.raises(ValidationError) as refused:
            Cookie(cookiegroup=group, name=name).full_clean()
        assert "name" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        Cookie(cookiegroup=group, name="_ga", path="/a;b", domain="exa mple.com").full_clean()
    assert {"path", "domain"} <= set(refused.value.message_dict)
    for name in ("_ga", "_gid", "__Host-x", "AMP_TOKEN", "a.b-c!#$%&'*+^`|~"):
        Cookie(cookiegroup=group, name=name, path="/", domain=".example.com").full_clean()


def test_the_django_admin_refuses_an_invalid_cookie_name():
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/django-admin/cookie_consent/cookie/add/",
        {"cookiegroup": _group("marketing").pk, "name": "bad name;", "path": "/", "domain": ""},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "cookie name" in response.content.decode()
    assert not Cookie.objects.filter(name="bad name;").exists()
    ok = client.post(
        "/django-admin/cookie_consent/cookie/add/",
        {"cookiegroup": _group("marketing").pk, "name": "_ads", "path": "/", "domain": ""},
    )
    assert ok.status_code == 302 and Cookie.objects.filter(name="_ads").exists()


def test_rejecting_with_an_invalid_inventory_entry_stores_nothing_and_answers():
    Cookie.objects.create(cookiegroup=_group("analytics"), name="bad name")
    response = browser().post("/consent/", {"action": "reject_all"})
    assert response.status_code == 303
    assert not ConsentRecord.objects.exists()
