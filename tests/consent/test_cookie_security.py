"""Safe defaults for the consent cookie: Secure unless DEBUG, a __Host- name supported, and
system checks for insecure cookie settings and missing transport security in production."""

import pytest
from django.core import checks
from django.test import Client

from consent import checks as consent_checks
from tests.builders import browser

pytestmark = pytest.mark.django_db

SECURE_SITE = {
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
}


def ids(messages):
    return [m.id for m in messages]


def _decide(client: Client, **extra):
    return client.post("/consent/", {"action": "accept_all"}, **extra)


def test_the_consent_cookie_is_secure_by_default_without_debug(settings):
    settings.DEBUG = False
    cookie = _decide(browser()).cookies["tailored_consent"]
    assert cookie["secure"] is True and cookie["httponly"] is True
    settings.DEBUG = True  # local development over plain HTTP
    assert not _decide(browser()).cookies["tailored_consent"]["secure"]
    settings.DEBUG = False
    settings.CONSENT_COOKIE_SECURE = False  # an explicit choice wins (and is warned about)
    assert not _decide(browser()).cookies["tailored_consent"]["secure"]
    assert ids(consent_checks.check_cookie_security()) == ["consent.W003"]


def test_deleting_the_consent_cookie_keeps_its_attributes(settings):
    from consent.notices import publish

    client = browser()
    _decide(client)
    publish(banner_text="A new notice.")
    deleted = client.get("/").cookies["tailored_consent"]
    assert deleted["max-age"] == 0 and deleted["secure"] is True and deleted["path"] == "/"


def test_a_host_prefixed_name_is_secure_host_only_and_on_every_path(settings):
    settings.CONSENT_COOKIE_NAME = "__Host-consent"
    settings.CONSENT_COOKIE_DOMAIN = ".example.com"
    settings.CONSENT_COOKIE_PATH = "/shop/"
    settings.DEBUG = True
    client = browser()
    cookie = _decide(client).cookies["__Host-consent"]
    assert cookie["secure"] is True and cookie["path"] == "/" and not cookie["domain"]
    assert client.get("/consent/state/").json()["decided"] is True  # read back under that name
    messages = consent_checks.check_cookie_security()
    assert ids(messages) == ["consent.W004"]
    assert "CONSENT_COOKIE_PATH" in messages[0].msg and "CONSENT_COOKIE_DOMAIN" in messages[0].msg
    settings.CONSENT_COOKIE_DOMAIN, settings.CONSENT_COOKIE_PATH = None, "/"
    assert consent_checks.check_cookie_security() == []


def test_missing_transport_security_is_reported_by_the_deployment_checks(settings):
    settings.DEBUG = False
    for name in SECURE_SITE:
        setattr(settings, name, False)
    assert "consent.W005" not in ids(checks.run_checks())
    deploy = consent_checks.check_transport_security()
    assert ids(deploy) == ["consent.W005"]
    assert all(name in deploy[0].msg for name in SECURE_SITE)
    assert "consent.W005" in ids(checks.run_checks(include_deployment_checks=True))
    for name, value in SECURE_SITE.items():
        setattr(settings, name, value)
    assert consent_checks.check_transport_security() == []
    settings.DEBUG = True
    for name in SECURE_SITE:
        setattr(settings, name, False)
    assert consent_checks.check_transport_security() == []


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("CONSENT_COOKIE_NAME", "my consent", "consent.E011"),
        ("CONSENT_COOKIE_NAME", "consent;", "consent.E011"),
        ("CONSENT_COOKIE_PATH", "/a;b", "consent.E011"),
        ("CONSENT_COOKIE_DOMAIN", "exa mple.com", "consent.E011"),
        ("CONSENT_COOKIE_SAMESITE", "Sometimes", "consent.E012"),
    ],
)
def test_a_consent_cookie_that_cannot_be_written_is_refused_at_startup(
    settings, setting, value, expected
):
    setattr(settings, setting, value)
    assert ids(consent_checks.check_cookie_security()) == [expected]
