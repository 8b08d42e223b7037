"""Styling the banner and the preferences page (docs/installation.md): consent/consent.css's
CSS variables restyle them, and any rule of the site's wins over the stylesheet's without
!important. Headless Chromium against the live demo site (whose stylesheet sets the
variables); screenshots go to test-artifacts/."""

import pytest

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

PLUM = "rgb(122, 31, 92)"
TEAL = "rgb(15, 61, 62)"  # the demo's --consent-accent (#0f3d3e)


def style(driver, element, prop: str) -> str:
    return driver.execute_script(
        "return getComputedStyle(arguments[0]).getPropertyValue(arguments[1])", element, prop
    )


def set_variable(driver, name: str, value: str) -> None:
    driver.execute_script(
        "document.documentElement.style.setProperty(arguments[0], arguments[1])", name, value
    )


def test_css_variables_and_the_sites_own_rules_style_the_banner_and_preferences(
    live_server, driver, screenshot
):
    demo_site()
    driver.get(live_server.url + "/")
    banner = WebDriverWait(driver, 15).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "section.consent-banner"))
    )
    button = banner.find_element(By.CSS_SELECTOR, "button[value=accept_all]")
    assert style(driver, button, "background-color") == TEAL
    assert style(driver, banner, "position") == "static"  # the demo's choice

    set_variable(driver, "--consent-accent", PLUM)
    set_variable(driver, "--consent-radius", "0px")
    set_variable(driver, "--consent-banner-position", "fixed")
    assert style(driver, button, "background-color") == PLUM
    assert style(driver, banner, "border-top-color") == PLUM
    assert style(driver, button, "border-top-left-radius") == "0px"
    assert style(driver, banner, "position") == "fixed"
    screenshot(driver, "banner-restyled")

    # A plain rule of the site's (no !important) beats the stylesheet's.
    driver.execute_script(
        "const s = document.createElement('style');"
        "s.textContent = '.consent-button { background-color: rgb(1, 2, 3); }';"
        "document.head.appendChild(s);"
    )
    assert style(driver, button, "background-color") == "rgb(1, 2, 3)"

    # The preferences page takes the same stylesheet and variables.
    driver.get(live_server.url + "/consent/preferences/")
    save = WebDriverWait(driver, 15).until(
        EC.visibility_of_element_located(
            (By.CSS_SELECTOR, ".consent-preferences button[value=settings]")
        )
    )
    assert style(driver, save, "background-color") == TEAL
    set_variable(driver, "--consent-accent", PLUM)
    assert style(driver, save, "background-color") == PLUM
    fieldset = driver.find_element(By.CSS_SELECTOR, ".consent-preferences fieldset")
    assert style(driver, fieldset, "border-top-color") == PLUM
    screenshot(driver, "preferences-restyled")
