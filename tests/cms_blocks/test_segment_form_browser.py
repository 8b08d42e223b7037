"""No error badge without an error, in a real browser: Wagtail counts the ``.error-message``
elements of a form for its error badges (the minimap, the "go to the first error" button); the
segment form shows none while its rule is valid, and one per problem when it is not.
Screenshots go to test-artifacts/."""

import json

import pytest
from django.contrib.auth import get_user_model

import segments.definitions
from tests.builders import segment
from tests.conftest import IN_CI

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
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

# Wagtail's own selector for what its error badges count (wagtailadmin.js, w-count).
COUNTED = ":not([hidden]):is(.error-message,.help-critical)"


def wait(driver, timeout: float = 15):
    return WebDriverWait(driver, timeout)


def counted(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent.trim())",
        COUNTED,
    )


def settled(driver):
    root = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[data-rule-builder].rule-builder--ready"))
    )
    wait(driver).until(lambda d: root.get_attribute("data-valid") is not None)
    wait(driver).until(lambda d: root.get_attribute("data-checking") is None)
    return root


def test_the_segment_forms_show_no_error_badge_until_there_is_an_error(
    driver, live_server, screenshot
):
    engaged = segment("engaged")
    segments.definitions.forget_definitions()
    get_user_model().objects.create_superuser("chief", "chief@example.com", "chief-pass")
    base = live_server.url
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("chief")
    driver.find_element(By.NAME, "password").send_keys("chief-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))

    for url in (
        "/admin/snippets/segments/segment/add/",
        f"/admin/snippets/segments/segment/edit/{engaged.pk}/",
    ):
        driver.get(base + url)
        root = settled(driver)
        # On a loaded machine a later check may still be waiting out the builder's debounce
        # when the first answer arrives: the valid rule's answer must come, within the wait.
        wait(driver).until(lambda d, root=root: root.get_attribute("data-valid") == "true")
        assert counted(driver) == [], url
        assert not driver.find_elements(By.CSS_SELECTOR, ".w-minimap-item--error")
    screenshot(driver, "valid-segment-no-badge")

    # One problem: one counted error, next to its condition, and the minimap flags the panel.
    minimum = root.find_element(By.CSS_SELECTOR, "[data-field=min]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", minimum)
    minimum.send_keys(Keys.CONTROL, "a")
    minimum.send_keys("0")
    wait(driver).until(lambda d: root.get_attribute("data-valid") == "false")
    settled(driver)
    errors = counted(driver)
    assert len(errors) == 1 and "'min' must be a whole number" in errors[0]
    screenshot(driver, "invalid-segment-one-badge")
    assert json.loads(driver.find_element(By.ID, "id_rule").get_attribute("value"))
