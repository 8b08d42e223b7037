"""The tracker in a real browser drops events the server would refuse for text it cannot store
(a NUL character, a lone surrogate), so one bad event never costs the rest of its batch; and a
string cut at 512 characters never ends in half a surrogate pair.

Headless Chromium against the live demo site; real PostgreSQL and Redis, Celery tasks eager.
"""

import time

import pytest

from segments.models import LoggedEvent
from tests.builders import demo_site
from tests.conftest import IN_CI

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    if IN_CI:
        raise
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ACCEPT = (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=accept_all]")


def test_the_tracker_drops_unstorable_text_and_sends_the_rest(driver, live_server, backend):
    demo_site()
    driver.get(f"{live_server.url}/guides/")
    WebDriverWait(driver, 10).until(EC.element_to_be_clickable(ACCEPT)).click()
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return !!window.tailored"))
    results = driver.execute_script(
        """
        var t = window.tailored;
        var r = [
          t.track("signup", {plan: "a\\u0000b"}),
          t.track("signup", {plan: "bad \\uD800 text"}),
          t.track("signup", {plan: "pro", contact: "bob@example.com"}),
          t.track("note", {text: "x".repeat(511) + "\\uD83D\\uDE00"}),
        ];
        t.flush();
        return r;
        """
    )
    assert results == [False, False, True, True]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and LoggedEvent.objects.exclude(name="page_view").count() < 2:
        time.sleep(0.2)
    sent = {e.name: e.properties for e in LoggedEvent.objects.exclude(name="page_view")}
    assert sent["signup"] == {"plan": "pro", "contact": "[email]"}
    assert sent["note"] == {"text": "x" * 511}  # the cut emoji's half is dropped
