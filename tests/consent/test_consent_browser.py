"""The consent banner in a real browser: headless Chromium against the live demo site.

Real PostgreSQL and Redis, Celery tasks eager (drained inside the request), the demo content
seeded at the start of each test.
"""

import pytest

from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tests.builders import demo_site
from tests.conftest import IN_CI

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.waits import gone
except ImportError:
    if IN_CI:
        raise  # the dev extra installs selenium: a CI run without it is broken
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"
ENGAGED_TEXT = "ENGAGED10"
BANNER = (By.CSS_SELECTOR, "section.consent-banner")
ACCEPT = (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=accept_all]")
REJECT = (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=reject_all]")
SEGMENTS = (By.CSS_SELECTOR, "[data-testid=segments]")


@pytest.fixture(autouse=True)
def _site():
    demo_site()


@pytest.fixture
def site(live_server, driver):
    """Open paths of the live server in the browser; returns the page's text."""

    def visit(path: str) -> str:
        driver.get(live_server.url + path)
        WebDriverWait(driver, 10).until(EC.presence_of_element_located(SEGMENTS))
        return driver.find_element(By.TAG_NAME, "body").text

    return visit


def wait(driver, timeout: float = 10):
    return WebDriverWait(driver, timeout)


def decide(driver, button_locator) -> None:
    """Click a banner button and wait for the redirected page, without the banner."""
    button = wait(driver).until(EC.element_to_be_clickable(button_locator))
    button.click()
    wait(driver).until(gone(button))
    wait(driver).until(EC.presence_of_element_located(SEGMENTS))
    assert driver.find_elements(*BANNER) == []


def consent_cookie(driver) -> str:
    cookie = driver.get_cookie(COOKIE)
    assert cookie is not None, driver.get_cookies()
    return cookie["value"]


def redis_keys(backend) -> list:
    return backend.client.keys(f"{backend.prefix}:*")


def streams(backend) -> dict:
    """Each event stream's length and last appended id (drains delete what they processed,
    so only the last id shows whether anything was appended since)."""
    return {
        key: (backend.client.xlen(key), backend.client.xinfo_stream(key)["last-generated-id"])
        for key in backend.client.keys(f"{backend.prefix}:e:*")
    }


def test_first_layer_offers_accept_and_reject_with_equal_prominence(driver, site, screenshot):
    site("/")
    banner = wait(driver).until(EC.visibility_of_element_located(BANNER))
    assert "Your privacy" in banner.text
    accept, reject = driver.find_element(*ACCEPT), driver.find_element(*REJECT)
    screenshot(driver, "banner")

    # Same element, same class, same look, both visible, about the same size.
    assert accept.text == "Accept all" and reject.text == "Reject all"
    assert accept.is_displayed() and reject.is_displayed()
    assert accept.tag_name == reject.tag_name == "button"
    assert accept.get_attribute("class") == reject.get_attribute("class")
    for prop in ("background-color", "color", "font-size", "font-weight", "border", "padding"):
        assert accept.value_of_css_property(prop) == reject.value_of_css_property(prop), prop
    assert accept.size["height"] == reject.size["height"]
    assert abs(accept.size["width"] - reject.size["width"]) <= 0.2 * accept.size["width"]
    assert accept.size["width"] > 40 and accept.size["height"] > 20

    # Reachable with the keyboard alone: Tab from the top of the page reaches both buttons.
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()
    reached = []
    for _ in range(40):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        active = driver.switch_to.active_element
        if active in (accept, reject) and active not in reached:
            reached.append(active)
        if len(reached) == 2:
            break
    assert reached == [accept, reject], "Tab does not reach both buttons, in order"

    # Nothing is ticked in advance, not even in the 'Choose purposes' layer.
    boxes = banner.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")
    assert boxes, "the banner offers no per-purpose choice"
    banner.find_element(By.TAG_NAME, "summary").click()
    wait(driver).until(lambda d: all(box.is_displayed() for box in boxes))
    assert [box.get_attribute("value") for box in boxes if box.is_selected()] == []
    screenshot(driver, "banner-purposes")


def test_reject_all_sets_no_identifier_and_stores_nothing(driver, site, backend):
    site("/")
    decide(driver, REJECT)

    assert consent_cookie(driver).split("|")[1] == "-"  # no identifier
    assert {c["name"] for c in driver.get_cookies()} <= {"csrftoken", COOKIE}

    for path in ("/guides/", "/ceramic-mug/", "/about-us/"):
        text = site(path)
        assert driver.find_elements(*BANNER) == []  # the decision is remembered
        assert ENGAGED_TEXT not in text
    assert "Your segments: none" in site("/")

    assert {c["name"] for c in driver.get_cookies()} <= {"csrftoken", COOKIE}
    assert consent_cookie(driver).split("|")[1] == "-"
    assert ConsentRecord.objects.count() == 0
    assert LoggedEvent.objects.count() == 0
    assert redis_keys(backend) == []


def test_accept_all_then_three_page_views_shows_the_engaged_variant(driver, site, backend):
    assert ENGAGED_TEXT not in site("/")
    decide(driver, ACCEPT)  # back on the home page: the first recorded view
    assert len(consent_cookie(driver).split("|")[1]) == 32

    site("/guides/")
    site("/ceramic-mug/")
    home = site("/")
    assert ENGAGED_TEXT in home
    assert "engaged" in driver.find_element(*SEGMENTS).text
    record = ConsentRecord.objects.get()
    assert record.method == "banner_accept_all"
    assert LoggedEvent.objects.filter(visitor_key=record.visitor_key, name="page_view").count() >= 3


def test_withdrawal_on_the_preferences_page_stops_tracking_on_the_next_page(
    driver, site, backend, screenshot
):
    site("/")
    decide(driver, ACCEPT)
    site("/guides/")
    site("/ceramic-mug/")
    assert ENGAGED_TEXT in site("/")

    driver.find_element(By.LINK_TEXT, "Privacy settings").click()
    withdraw = wait(driver).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "button[name=action][value=withdraw]"))
    )
    assert driver.current_url.endswith("/consent/preferences/")
    boxes = driver.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=purposes]")
    assert boxes and all(box.is_selected() for box in boxes)  # what was accepted
    screenshot(driver, "preferences")

    withdraw.click()
    wait(driver).until(gone(withdraw))
    wait(driver).until(EC.url_contains("/consent/preferences/"))
    assert driver.find_elements(By.CSS_SELECTOR, "button[value=withdraw]") == []
    boxes = driver.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=purposes]")
    assert boxes and not any(box.is_selected() for box in boxes)
    screenshot(driver, "preferences-withdrawn")
    assert consent_cookie(driver).split("|")[1] == "-"
    assert ConsentRecord.objects.latest("seq").method == "withdraw"

    events, streamed = LoggedEvent.objects.count(), streams(backend)
    assert events >= 4 and streamed, "nothing was recorded before the withdrawal"
    site("/about-us/")
    home = site("/")
    assert ENGAGED_TEXT not in home
    assert "Your segments: none" in home
    assert LoggedEvent.objects.count() == events
    assert streams(backend) == streamed
