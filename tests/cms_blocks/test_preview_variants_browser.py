"""Previews show what visitors get, whole-page variants included, in a real browser: an editor
(not a superuser) previews a page that has variants as several combinations of segments on
"Preview as segments" and in Wagtail's own preview panel, and each shows the variant that such
a visitor is then served at the page's URL. Headless Chromium against the live demo site;
screenshots go to test-artifacts/.
"""

import contextlib
import warnings
from urllib.parse import urljoin

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from wagtail.models import GroupPagePermission, Page

import segments.definitions
from demo.home.models import ContentPage
from tests.builders import BROWSER_UA, demo_site, page_variant, segment
from tests.conftest import IN_CI

try:
    from selenium.common.exceptions import (
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.support.waits import click, gone
except ImportError:
    if IN_CI:
        raise
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}
MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
TEXTS = ("ORIGINAL-GUIDES", "BOTH-VARIANT", "MOBILE-VARIANT", "FRENCH-VARIANT")


def wait(driver, timeout: float = 20):
    return WebDriverWait(driver, timeout)


def shown(text: str) -> list[str]:
    return [t for t in TEXTS if t in text]


@pytest.fixture
def guides():
    """Guides with three whole-page variants (priorities: mobile 5, french 1; "both" is tried
    before "mobile", being earlier in the page tree)."""
    demo_site()
    segment("french", FRENCH, name="French speakers", priority=1)
    segment("mobile", MOBILE, name="Mobile visitors", priority=5)
    segments.definitions.forget_definitions()
    original = ContentPage.objects.get(slug="guides")
    original.body = [("paragraph", "<p>ORIGINAL-GUIDES</p>")]
    original.save_revision().publish()
    page_variant(original, ["french", "mobile"], "BOTH-VARIANT", match="all", slug="guides-both")
    page_variant(original, "mobile", "MOBILE-VARIANT")
    page_variant(original, "french", "FRENCH-VARIANT")
    user = get_user_model().objects.create_user("editor", password="editor-pass", is_staff=True)
    group = Group.objects.create(name="Page editors")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin")
    )
    GroupPagePermission.objects.create(
        group=group, page=Page.objects.get(slug="welcome"), permission_type="change"
    )
    user.groups.add(group)
    return ContentPage.objects.get(pk=original.pk)


def log_in(driver, base):
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("editor")
    driver.find_element(By.NAME, "password").send_keys("editor-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))


def preview_as(driver, base, page, screenshot, chosen: list[str]) -> tuple[str, str]:
    """Tick ``chosen`` on "Preview as segments": the frame's text and the screen's note."""
    driver.get(f"{base}/admin/tailored/preview/{page.pk}/")
    for box in driver.find_elements(By.CSS_SELECTOR, "input[name=segments]"):
        if (box.get_attribute("value") in chosen) != box.is_selected():
            click(driver, box)
    before = driver.find_element(By.CSS_SELECTOR, "[data-testid=preview-frame]")
    click(
        driver,
        driver.find_element(By.CSS_SELECTOR, "[data-testid=preview-form] button[type=submit]"),
    )
    wait(driver).until(gone(before))
    notes = driver.find_elements(By.CSS_SELECTOR, "[data-testid=preview-variant]")
    note = notes[0].text if notes else ""
    frame = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=preview-frame]"))
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    driver.switch_to.frame(frame)
    text = wait(driver).until(EC.presence_of_element_located((By.TAG_NAME, "main"))).text
    driver.switch_to.default_content()
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "preview-as-" + ("-".join(chosen) or "nobody"))
    return text, note


def panel_text(driver) -> str:
    try:
        driver.switch_to.frame(driver.find_element(By.ID, "w-preview-iframe"))
        return driver.find_element(By.TAG_NAME, "main").text
    except WebDriverException:
        return ""
    finally:
        driver.switch_to.default_content()


def preview_panel_shows(driver, base, page, mode_label: str, expected: list[str]) -> list[str]:
    """Wagtail's preview panel in the page editor, in the mode ``mode_label``: what it shows
    once it shows ``expected``. Wagtail's panel script can lag far behind on a loaded machine
    (see test_editor_browser): after two tries, the URL the panel loads for the mode is checked
    directly, with a warning."""
    for _ in range(2):
        driver.get(f"{base}/admin/pages/{page.pk}/edit/")
        try:
            WebDriverWait(driver, 15).until(
                EC.visibility_of_element_located((By.ID, "id_preview_mode"))
            )
        except TimeoutException:  # (the panel is shut: open it)
            toggle = driver.find_element(By.CSS_SELECTOR, "[data-side-panel-toggle=preview]")
            click(driver, toggle)
        mode = wait(driver).until(EC.visibility_of_element_located((By.ID, "id_preview_mode")))
        Select(mode).select_by_visible_text(mode_label)
        with contextlib.suppress(TimeoutException):
            wait(driver, 30).until(lambda d: shown(panel_text(d)) == expected)
            return expected
    panel = driver.find_element(By.CSS_SELECTOR, "[data-controller=w-preview]")
    url = panel.get_attribute("data-w-preview-url-value")
    [value] = [
        o.get_attribute("value")
        for o in driver.find_elements(By.CSS_SELECTOR, "#id_preview_mode option")
        if (o.get_attribute("textContent") or "").strip() == mode_label
    ]
    warnings.warn(
        f"Wagtail's preview panel did not show {mode_label!r} in two tries; checked its "
        "preview URL directly",
        stacklevel=2,
    )
    driver.get(urljoin(base + "/", url) + f"?mode={value}")
    return shown(driver.find_element(By.TAG_NAME, "main").text)


def visit(driver, base, path, user_agent, language):
    driver.get(base + "/consent/preferences/")
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": user_agent})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": language}}
    )
    driver.get(base + path)
    return driver.find_element(By.TAG_NAME, "main").text


def test_an_editor_previews_every_combination_and_sees_the_variant_visitors_get(
    guides, live_server, driver, screenshot, settings
):
    settings.WAGTAIL_AUTOSAVE_INTERVAL = 0
    base = live_server.url
    log_in(driver, base)

    cases = {
        (): ("ORIGINAL-GUIDES", None),
        ("french",): ("FRENCH-VARIANT", "guides-french"),
        ("mobile",): ("MOBILE-VARIANT", "guides-mobile"),
        ("french", "mobile"): ("BOTH-VARIANT", "guides-both"),
    }
    for chosen, (text, slug) in cases.items():
        frame, note = preview_as(driver, base, guides, screenshot, list(chosen))
        assert shown(frame) == [text], (chosen, frame[:300])
        if slug is None:
            assert note == ""
        else:
            assert f"({slug})" in note and "served the page variant" in note, note

    # Wagtail's own preview panel, one segment per mode.
    assert preview_panel_shows(
        driver, base, guides, "As “French speakers”", ["FRENCH-VARIANT"]
    ) == ["FRENCH-VARIANT"]
    screenshot(driver, "preview-panel-french")
    assert preview_panel_shows(
        driver, base, guides, "Everyone (no segment)", ["ORIGINAL-GUIDES"]
    ) == ["ORIGINAL-GUIDES"]

    # What real visitors get at /guides/ is what the previews showed.
    assert shown(visit(driver, base, "/guides/", PHONE_UA, "fr-FR,fr")) == ["BOTH-VARIANT"]
    screenshot(driver, "visitor-french-phone")
    assert shown(visit(driver, base, "/guides/", BROWSER_UA, "fr-FR,fr")) == ["FRENCH-VARIANT"]
    assert shown(visit(driver, base, "/guides/", PHONE_UA, "en-GB")) == ["MOBILE-VARIANT"]
    assert shown(visit(driver, base, "/guides/", BROWSER_UA, "en-GB")) == ["ORIGINAL-GUIDES"]
