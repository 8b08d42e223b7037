"""Usage is true, in a real browser (headless Chromium against the live demo site): the segment
listing counts the content using each segment, the delete screen lists the page, its block and
the page variant using it and offers no delete button; Reports → Page variants shows which
pages have variants for which segments, and its "Create variant" action makes a draft variant
and opens it in the editor. Screenshots go to test-artifacts/."""

import pytest
from django.contrib.auth import get_user_model

import segments.definitions
from demo.home.models import ContentPage
from segments.models import Segment
from tests.builders import demo_site, page_variant, personalised_page, segment
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

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


def wait(driver, timeout: float = 15):
    return WebDriverWait(driver, timeout)


@pytest.fixture
def site():
    demo_site()
    french = segment("french", FRENCH, name="French speakers")
    segments.definitions.forget_definitions()
    personalised_page(variants=[("french", "Offre en français")])
    guides = ContentPage.objects.get(slug="guides")
    page_variant(guides, "french", "Guides en français", slug="guides-fr", title="Guides FR")
    get_user_model().objects.create_superuser("chief", "chief@example.com", "chief-pass")
    return french


def log_in(driver, base):
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("chief")
    driver.find_element(By.NAME, "password").send_keys("chief-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))


def test_segment_usage_is_counted_listed_and_protects_the_segment(
    driver, live_server, site, screenshot
):
    base = live_server.url
    log_in(driver, base)
    driver.get(f"{base}/admin/snippets/segments/segment/")
    row = wait(driver).until(
        EC.presence_of_element_located(
            (By.XPATH, "//tr[.//a[normalize-space()='French speakers']]")
        )
    )
    assert "Used 2 times" in row.text
    screenshot(driver, "segment-listing-usage")

    driver.get(f"{base}/admin/snippets/segments/segment/delete/{site.pk}/")
    usage = wait(driver).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "ul.tailored-segment-usage"))
    )
    assert "Offers (page): Body → Personalised content" in usage.text
    assert "Guides FR (page variant of “Guides”): Variant segments" in usage.text
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "prevent it from being deleted" in body
    assert not driver.find_elements(By.XPATH, "//button[normalize-space()='Yes, delete']")
    screenshot(driver, "segment-delete-protected")
    assert Segment.objects.filter(pk=site.pk).exists()


def test_the_page_variants_report_and_create_variant(driver, live_server, site, screenshot):
    base = live_server.url
    log_in(driver, base)
    driver.get(f"{base}/admin/tailored/variants/")
    guides = wait(driver).until(
        EC.presence_of_element_located((By.XPATH, "//tr[.//a[normalize-space()='Guides']]"))
    )
    assert "Guides FR" in guides.text and "for French speakers" in guides.text
    screenshot(driver, "page-variants-report")
    about = driver.find_element(By.XPATH, "//tr[.//a[normalize-space()='About us']]")
    about.find_element(By.LINK_TEXT, "Create variant").click()
    french = wait(driver).until(
        EC.element_to_be_clickable((By.XPATH, "//label[normalize-space()='French speakers']"))
    )
    french.click()
    screenshot(driver, "create-variant-form")
    driver.find_element(By.XPATH, "//button[normalize-space()='Create the variant']").click()
    wait(driver).until(EC.url_contains("/edit/"))
    assert "created as a draft for French speakers" in driver.find_element(By.TAG_NAME, "body").text
    screenshot(driver, "variant-created-in-editor")
    variant = ContentPage.objects.get(variant_of__slug="about-us")
    assert variant.variant_segments == ["french"] and not variant.live
