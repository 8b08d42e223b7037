"""Personalise any content, in a real browser: an editor (not a superuser) builds a personalised
block whose default and variant each hold an image and a call to action in Wagtail's page
editor (choosers, nested streams), publishes it, and visitors in and out of the segment see
their image and button; a consented visitor's click on the variant's button reaches the block
report. Headless Chromium against the live demo site, real PostgreSQL and Redis. Screenshots go
to test-artifacts/.
"""

import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from wagtail.models import Collection, GroupCollectionPermission, GroupPagePermission, Page

import segments.definitions
from segments.models import LoggedEvent
from tests.builders import BROWSER_UA, demo_site, segment
from tests.conftest import IN_CI

try:
    from selenium.common.exceptions import (
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.support.waits import choose_option as shared_choose_option
    from tests.support.waits import click as shared_click
    from tests.support.waits import gone
except ImportError:
    if IN_CI:
        raise
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
CHOICE = (
    "//*[contains(@class, 'modal')]//a[@data-chooser-modal-choice]"
    "[contains(normalize-space(.), '{title}') or contains(@title, '{title}')]"
)
BLOCK = (By.CSS_SELECTOR, "main [data-tailored-block]")


def wait(driver, timeout: float | None = None):
    # Wagtail's editor scripts redraw slowly on a loaded two-core CI machine: wait longer there.
    # An element the scripts redraw while it is checked is looked up again, not a failure.
    redrawn = (StaleElementReferenceException,)
    return WebDriverWait(driver, timeout or (45 if IN_CI else 20), ignored_exceptions=redrawn)


def click(driver, element):
    shared_click(driver, element, 45 if IN_CI else 20)


def choose_option(driver, label: str):
    shared_choose_option(driver, label, 45 if IN_CI else 20)


@pytest.fixture
def editor():
    """Admin access, edit and publish below the home page, choose images: not a superuser."""
    demo_site()
    segment("mobile", MOBILE, name="Mobile visitors")
    segments.definitions.forget_definitions()
    user = get_user_model().objects.create_user("editor", password="editor-pass", is_staff=True)
    group = Group.objects.create(name="Personalisation editors")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"),
        Permission.objects.get(content_type__app_label="cms_blocks", codename="view_results"),
    )
    home = Page.objects.get(slug="welcome")
    for kind in ("add", "change", "publish"):
        GroupPagePermission.objects.create(group=group, page=home, permission_type=kind)
    GroupCollectionPermission.objects.create(
        group=group,
        collection=Collection.get_first_root_node(),
        permission=Permission.objects.get(
            content_type__app_label="wagtailimages", codename="choose_image"
        ),
    )
    user.groups.add(group)
    return user


def log_in(driver, base):
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("editor")
    driver.find_element(By.NAME, "password").send_keys("editor-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))


class Editor:
    """The page editor, holding one personalised block (found again on each use: Wagtail's
    scripts redraw parts of the stream)."""

    def __init__(self, driver, prefix: str, block_id: str):
        self.driver, self.prefix, self.block_id = driver, prefix, block_id

    def block(self):
        return self.driver.find_element(By.CSS_SELECTOR, f"[data-contentpath='{self.block_id}']")

    def scope(self, item_id: str | None):
        block = self.block()
        if item_id is None:
            return block.find_element(By.CSS_SELECTOR, "[data-contentpath='default']")
        item = block.find_element(By.CSS_SELECTOR, f"[data-contentpath='{item_id}']")
        return item.find_element(By.CSS_SELECTOR, "[data-contentpath='content']")

    def inserts(self, item_id: str | None) -> list:
        return self.scope(item_id).find_elements(By.XPATH, ".//button[@title='Insert a block']")

    def append(self, item_id: str | None, label: str):
        """Add a ``label`` block at the end of the default's (or a variant's) content, and wait
        until the stream shows it (each child brings its own insert button). A menu that a
        redraw closed before the click is opened again; a click that took is never repeated."""
        before = len(self.inserts(item_id))
        for attempt in range(3):
            click(self.driver, self.inserts(item_id)[-1])
            try:
                choose_option(self.driver, label)
            except TimeoutException:  # the menu never opened, or closed under the click
                if attempt == 2:
                    raise
                continue
            try:
                wait(self.driver).until(lambda d: len(self.inserts(item_id)) > before)
                return
            except TimeoutException:  # the option's click was lost: the stream is unchanged
                if attempt == 2:
                    raise

    def choose_image(self, name: str, title: str):
        field = wait(self.driver).until(EC.presence_of_element_located((By.NAME, name)))
        chooser = self.driver.find_element(By.ID, f"{field.get_attribute('id')}-chooser")
        click(self.driver, chooser.find_element(By.CSS_SELECTOR, "[data-chooser-action-choose]"))
        choice = wait(self.driver).until(
            EC.element_to_be_clickable((By.XPATH, CHOICE.format(title=title)))
        )
        click(self.driver, choice)
        wait(self.driver).until(lambda d: d.find_element(By.NAME, name).get_attribute("value"))
        wait(self.driver).until(gone(choice))

    def fill(self, name: str, text: str):
        field = wait(self.driver).until(EC.visibility_of_element_located((By.NAME, name)))
        click(self.driver, field)
        field.send_keys(text)


def build_block(driver, base, page, screenshot) -> None:
    driver.get(f"{base}/admin/pages/{page.pk}/edit/")
    body = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[data-contentpath='body']"))
    )
    click(driver, body.find_elements(By.CSS_SELECTOR, "button.c-sf-add-button")[-1])
    choose_option(driver, "Personalised content")
    types = wait(driver).until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, "input[name^=body-][name$=-type][value=personalised]"
        )
    )
    prefix = types[-1].get_attribute("name").removesuffix("-type")
    block_id = driver.find_element(By.NAME, f"{prefix}-id").get_attribute("value")
    editor = Editor(driver, prefix, block_id)

    # Default content, for everyone else: the welcome image and a button to the guides.
    default = f"{prefix}-value-default"
    editor.append(None, "Image")
    editor.choose_image(f"{default}-0-value", "Welcome banner")
    editor.append(None, "Call to action")
    editor.fill(f"{default}-1-value-text", "DEFAULT-BUTTON")
    editor.fill(f"{default}-1-value-url", f"{base}/guides/")
    screenshot(driver, "editor-default-image-and-cta")

    # The variant for mobile visitors: the offer image and a button to the shop.
    variant = f"{prefix}-value-variants-0"
    item_id = driver.find_element(By.NAME, f"{variant}-id").get_attribute("value")
    editor.fill(f"{variant}-value-label", "Phones: offer")
    segments_ = driver.find_element(By.NAME, f"{variant}-value-segments")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", segments_)
    Select(segments_).select_by_value("mobile")
    editor.append(item_id, "Image")
    editor.choose_image(f"{variant}-value-content-0-value", "Engaged offer banner")
    editor.append(item_id, "Call to action")
    editor.fill(f"{variant}-value-content-1-value-text", "MOBILE-BUTTON")
    editor.fill(f"{variant}-value-content-1-value-url", f"{base}/ceramic-mug/")
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'start'})",
        driver.find_element(By.CSS_SELECTOR, f"[data-contentpath='{block_id}']"),
    )
    screenshot(driver, "editor-variant-image-and-cta")

    toggle = driver.find_element(
        By.CSS_SELECTOR, "footer .w-dropdown__toggle, footer [data-w-dropdown-target=toggle]"
    )
    click(driver, toggle)
    click(driver, wait(driver).until(EC.element_to_be_clickable((By.NAME, "action-publish"))))
    wait(driver).until(lambda d: "/edit/" not in d.current_url)


def visit(driver, base, path, user_agent):
    driver.get(base + "/consent/preferences/")
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": user_agent})
    driver.get(base + path)
    return wait(driver).until(EC.presence_of_element_located(BLOCK))


def shows(driver, block) -> dict:
    """The image (its alt text, and whether it loaded) and the button the block shows."""
    images = block.find_elements(By.TAG_NAME, "img")
    wait(driver).until(
        lambda d: all(d.execute_script("return arguments[0].complete", i) for i in images)
    )
    return {
        "images": [
            (
                i.get_attribute("alt"),
                driver.execute_script("return arguments[0].naturalWidth", i) > 0,
            )
            for i in images
        ],
        "buttons": [
            (a.text, a.get_attribute("href")) for a in block.find_elements(By.TAG_NAME, "a")
        ],
        "variant": block.get_attribute("data-tailored-variant"),
    }


def test_an_editor_personalises_an_image_and_a_call_to_action_per_segment(
    editor, live_server, driver, screenshot, backend, settings
):
    settings.WAGTAIL_AUTOSAVE_INTERVAL = 0  # (see test_editor_browser: races on busy machines)
    settings.ROOT_URLCONF = "tests.support.media_urls"  # the images' files, for the screenshots
    base = live_server.url
    page = Page.objects.get(slug="about-us").specific
    log_in(driver, base)
    build_block(driver, base, page, screenshot)

    page.refresh_from_db()
    assert page.live and page.has_unpublished_changes is False
    [stored] = [b for b in page.body.raw_data if b["type"] == "personalised"]
    value = stored["value"]
    assert [c["type"] for c in value["default"]] == ["image", "call_to_action"]
    [variant] = value["variants"]
    assert variant["value"]["label"] == "Phones: offer"
    assert variant["value"]["segments"] == ["mobile"]
    assert [c["type"] for c in variant["value"]["content"]] == ["image", "call_to_action"]
    assert "MOBILE-BUTTON" in json.dumps(variant)

    # A phone (a context-only segment: no consent needed) gets the variant's image and button.
    phone = shows(driver, visit(driver, base, "/about-us/", MOBILE_UA))
    assert phone == {
        "images": [("Engaged offer banner", True)],
        "buttons": [("MOBILE-BUTTON", f"{base}/ceramic-mug/")],
        "variant": variant["id"],
    }
    screenshot(driver, "visitor-in-segment")
    # A desktop visitor gets the default's.
    desktop = shows(driver, visit(driver, base, "/about-us/", BROWSER_UA))
    assert desktop == {
        "images": [("Welcome banner", True)],
        "buttons": [("DEFAULT-BUTTON", f"{base}/guides/")],
        "variant": "default",
    }
    screenshot(driver, "visitor-outside-segment")

    # A phone visitor who consents clicks the variant's button: the click is recorded for the
    # variant, and the editor's block report shows it.
    block = visit(driver, base, "/about-us/", MOBILE_UA)
    accept = wait(driver).until(
        EC.element_to_be_clickable(
            (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=accept_all]")
        )
    )
    accept.click()
    wait(driver).until(gone(accept))
    block = wait(driver).until(EC.presence_of_element_located(BLOCK))
    click(driver, block.find_element(By.LINK_TEXT, "MOBILE-BUTTON"))
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and not LoggedEvent.objects.filter(name="click", properties__variant=variant["id"]).exists()
    ):
        time.sleep(0.2)
    click_event = LoggedEvent.objects.get(name="click", properties__variant=variant["id"])
    assert click_event.properties == {
        "block": stored["id"],
        "variant": variant["id"],
        "page": page.pk,
    }

    driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": BROWSER_UA})
    log_in(driver, base)
    driver.get(base + "/admin/tailored/results/blocks/")
    table = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=block-results] table"))
    )
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    # (the variant named by its id or its label: either way, this variant's all-visitors row)
    [row] = [
        r
        for r in rows
        if len(r) > 5 and r[2] in (variant["id"], "Phones: offer") and r[3] == "All visitors"
    ]
    assert row[0] == page.title and row[5] == "1", rows  # one click
    screenshot(driver, "block-report")
