"""Headless browsers, scripts and crawlers are not recorded (SEGMENTS_BOT_USER_AGENTS), a
site can change that, and a wrong pattern or a Celery app that ignores the settings are
system-check findings. Real PostgreSQL and Redis, the drain eager."""

import json

import pytest
from celery import Celery, current_app
from django.core.checks import run_checks

from segments.models import LoggedEvent
from tests.builders import BROWSER_UA, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
SCRIPTS = [
    HEADLESS_CHROME,
    "Python-urllib/3.11",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def visit(user_agent: str) -> tuple[int, int]:
    """A visitor with ``user_agent`` who consents, views a page and sends an event: the page
    views and events recorded for them."""
    client = consenting_browser()
    client.defaults["HTTP_USER_AGENT"] = user_agent
    assert client.get("/guides/").status_code == 200
    response = client.post(
        "/api/events/",
        json.dumps({"events": [{"name": "signup", "properties": {}}]}),
        content_type="application/json",
    )
    assert response.status_code == 202
    return (
        LoggedEvent.objects.filter(name="page_view", properties__path="/guides/").count(),
        response.json()["recorded"],
    )


@pytest.mark.parametrize("user_agent", SCRIPTS)
def test_headless_browsers_scripts_and_crawlers_are_not_recorded(backend, user_agent):
    assert visit(user_agent) == (0, 0)


def test_a_browser_is_recorded(backend):
    assert visit(BROWSER_UA) == (1, 1)


def test_the_setting_records_every_user_agent_when_none(backend, settings):
    settings.SEGMENTS_BOT_USER_AGENTS = None
    assert visit(HEADLESS_CHROME) == (1, 1)


def test_a_sites_own_pattern_replaces_the_default(backend, settings):
    settings.SEGMENTS_BOT_USER_AGENTS = r"uptime-monitor"
    assert visit("uptime-monitor/1.0") == (0, 0)
    assert visit(HEADLESS_CHROME) == (1, 1)


def _ids(settings_) -> set[str]:
    return {message.id for message in run_checks()}


def test_a_pattern_that_is_not_a_regular_expression_is_a_check_error(settings):
    settings.SEGMENTS_BOT_USER_AGENTS = r"bot(("
    assert "segments.E010" in _ids(settings)
    settings.SEGMENTS_BOT_USER_AGENTS = ["bot"]
    assert "segments.E010" in _ids(settings)
    settings.SEGMENTS_BOT_USER_AGENTS = None
    assert "segments.E010" not in _ids(settings)


def test_a_celery_app_that_does_not_read_the_settings_is_a_check_warning(settings):
    assert "segments.W004" not in _ids(settings)  # the demo's app reads them
    previous = current_app._get_current_object()
    # A project without an app configured from its settings: Celery's own default app.
    Celery("unconfigured", set_as_current=True)
    try:
        assert "segments.W004" in _ids(settings)
    finally:
        previous.set_current()
    assert "segments.W004" not in _ids(settings)
