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


IPAD_AS_MAC_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)


def test_an_ipad_presenting_itself_as_a_mac_is_a_tablet_once_the_tracker_reports_its_touch_screen(
    driver, live_server, backend
):
    from segments.models import Segment

    demo_site()
    Segment.objects.create(
        slug="ipads",
        name="iPads",
        rule={
            "type": "all",
            "conditions": [
                {"type": "event_count", "event": "page_view", "min": 1, "window": "1h"},
                {"type": "context", "attribute": "device", "op": "eq", "value": "tablet"},
            ],
        },
    )
    # iPadOS 13+ Safari: a Mac's user agent, no client hints, and a touch screen.
    driver.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": IPAD_AS_MAC_UA})
    driver.execute_cdp_cmd(
        "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}
    )
    driver.get(f"{live_server.url}/guides/")
    WebDriverWait(driver, 10).until(EC.element_to_be_clickable(ACCEPT)).click()
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return !!window.tailored"))
    driver.execute_script("window.tailored.flush()")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not LoggedEvent.objects.filter(name="device_hint"):
        time.sleep(0.2)
    # (one per page: the page before the consent too, when its beacon left after the decision)
    hints = LoggedEvent.objects.filter(name="device_hint")
    assert hints and all(h.properties == {"touch_points": 5} for h in hints)
    # The page views themselves still say "desktop" (the user agent); the visitor's device is
    # a tablet from the report on, and the segment of tablets holds them.
    assert LoggedEvent.objects.filter(name="page_view").first().properties["device"] == "desktop"
    segments_text = ""
    while time.monotonic() < deadline + 20:
        driver.get(f"{live_server.url}/")
        segments_text = driver.find_element(By.CSS_SELECTOR, "[data-testid=segments]").text
        if "ipads" in segments_text:
            break
        time.sleep(0.5)
    assert "ipads" in segments_text


def test_a_mac_without_a_touch_screen_sends_no_device_report(driver, live_server, backend):
    demo_site()
    driver.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": IPAD_AS_MAC_UA})
    driver.get(f"{live_server.url}/guides/")
    WebDriverWait(driver, 10).until(EC.element_to_be_clickable(ACCEPT)).click()
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return !!window.tailored"))
    driver.execute_script("window.tailored.track('probe', {}); window.tailored.flush()")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not LoggedEvent.objects.filter(name="probe"):
        time.sleep(0.2)
    assert LoggedEvent.objects.filter(name="probe").exists()
    assert not LoggedEvent.objects.filter(name="device_hint").exists()
