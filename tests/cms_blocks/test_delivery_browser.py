"""Personalised content in a real browser: visitors in two segments each get their variant,
and the tracker reports the impression and click of what they saw.

Headless Chromium against the live demo site; real PostgreSQL and Redis, Celery tasks eager.
"""

import pytest

import segments.definitions
from segments.models import LoggedEvent
from tests.builders import demo_site, personalised_page, segment
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

SPRING = {"type": "context", "attribute": "utm_campaign", "op": "eq", "value": "spring"}
BLOCK = (By.CSS_SELECTOR, "[data-tailored-block]")
ACCEPT = (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=accept_all]")


@pytest.fixture
def offers():
    demo_site()
    segment("spring", SPRING)
    segments.definitions.forget_definitions()
    return personalised_page(
        default='Standard offer <a href="/guides/">guides</a>',
        variants=[
            ("engaged", 'ENGAGED offer <a href="/guides/">claim</a>'),
            ("spring", "Spring sale offer"),
        ],
    )


def wait(driver, timeout: float = 10):
    return WebDriverWait(driver, timeout)


def open_page(driver, url):
    driver.get(url)
    return wait(driver).until(EC.presence_of_element_located(BLOCK))


def wait_for_events(predicate, timeout=60):  # a poll: a loaded CI machine drains late
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    return None


def test_visitors_in_two_segments_each_get_their_variant(
    driver, live_server, offers, screenshot, backend
):
    base = live_server.url

    # A campaign visitor (context-only segment: no consent needed) sees the spring variant.
    block = open_page(driver, f"{base}/offers/?utm_campaign=spring")
    assert "Spring sale offer" in block.text
    spring_variant = block.get_attribute("data-tailored-variant")
    assert spring_variant not in ("", "default")
    driver.execute_script("window.tailored.flush()")
    screenshot(driver, "spring")

    # A new visitor who consents and browses becomes "engaged" through the real pipeline.
    driver.delete_all_cookies()
    open_page(driver, f"{base}/offers/")
    assert "Standard offer" in driver.find_element(*BLOCK).text
    wait(driver).until(EC.element_to_be_clickable(ACCEPT)).click()
    wait(driver).until(EC.presence_of_element_located(BLOCK))
    for path in ("/guides/", "/about-us/", "/ceramic-mug/"):
        driver.get(base + path)
    block = open_page(driver, f"{base}/offers/")
    assert "ENGAGED offer" in block.text, block.text
    assert "Spring" not in block.text
    engaged_variant = block.get_attribute("data-tailored-variant")
    assert engaged_variant not in ("", "default")
    screenshot(driver, "engaged")

    # The tracker reports the impression of the engaged variant, then the click on its link.
    driver.execute_script("window.tailored.flush()")
    impression = wait_for_events(
        lambda: LoggedEvent.objects.filter(
            name="impression", properties__variant=engaged_variant
        ).first()
    )
    assert impression is not None, list(LoggedEvent.objects.values_list("name", "properties"))
    assert impression.properties == {
        "block": block.get_attribute("data-tailored-block"),
        "variant": engaged_variant,
        "page": offers.pk,
    }
    block.find_element(By.LINK_TEXT, "claim").click()  # the page unloads: sent by beacon
    click = wait_for_events(
        lambda: LoggedEvent.objects.filter(
            name="click", properties__variant=engaged_variant
        ).first()
    )
    assert click is not None and click.properties["page"] == offers.pk

    # The campaign visitor's impression was never recorded: they had not consented.
    assert not LoggedEvent.objects.filter(properties__variant=spring_variant).exists()
