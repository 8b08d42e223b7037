"""Variants never leak, in a real browser (headless Chromium against the live demo site):
the editor's delete screen lists the variant that goes with the page, and once deleted the
variant's discount code is nowhere (its URL, the sitemap, the headless API); a private page's
content is refused to an anonymous browser by the API, canonical or variant id. Screenshots go
to test-artifacts/."""

import json

import pytest
from django.contrib.auth import get_user_model
from wagtail.models import Page, PageViewRestriction

import segments.definitions
from demo.home.models import ContentPage, HomePage
from tests.builders import demo_site, page_variant, segment
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
CODE = "CODE-PROMO-FR40"


def wait(driver, timeout: float = 15):
    return WebDriverWait(driver, timeout)


@pytest.fixture
def site():
    demo_site()
    segment("french", FRENCH, name="French speakers")
    segments.definitions.forget_definitions()
    guides = ContentPage.objects.get(slug="guides")
    variant = page_variant(
        guides, "french", f"Remise : {CODE}", slug="guides-fr", title="Guides FR"
    )
    get_user_model().objects.create_superuser("chief", "chief@example.com", "chief-pass")
    return guides, variant


def log_in(driver, base):
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("chief")
    driver.find_element(By.NAME, "password").send_keys("chief-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_deleting_a_page_lists_and_removes_its_variant_which_then_leaks_nowhere(
    driver, live_server, site, screenshot
):
    guides, variant = site
    base = live_server.url
    log_in(driver, base)
    driver.get(f"{base}/admin/pages/{guides.pk}/delete/")
    listed = wait(driver).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, ".messages .tailored-variant-list"))
    )
    assert "“Guides FR” for French speakers" in listed.text
    assert "Deleting this page also deletes its page variants" in body_text(driver)
    screenshot(driver, "delete-screen-lists-variant")
    driver.find_element(By.CSS_SELECTOR, "form input[type=submit].serious").click()
    wait(driver).until(lambda d: "Its page variants were deleted too" in d.page_source)
    screenshot(driver, "deleted-with-variant")
    assert not Page.objects.filter(pk__in=[guides.pk, variant.pk]).exists()

    driver.delete_all_cookies()  # a visitor now
    driver.get(f"{base}/guides-fr/")
    assert CODE not in driver.page_source
    assert "404" in driver.title or "not found" in driver.page_source.lower()
    screenshot(driver, "variant-url-gone")
    driver.get(f"{base}/sitemap.xml")
    assert "guides-fr" not in driver.page_source and "/about-us/" in driver.page_source
    driver.get(f"{base}/api/personalization/pages/{variant.pk}/")
    assert CODE not in driver.page_source
    assert "No live page with this id" in driver.page_source


def test_the_api_refuses_a_private_page_to_an_anonymous_browser(
    driver, live_server, site, screenshot
):
    guides, variant = site
    PageViewRestriction.objects.create(
        page=guides, restriction_type=PageViewRestriction.PASSWORD, password="x"
    )
    base = live_server.url
    for page in (variant, guides):
        driver.get(f"{base}/api/personalization/pages/{page.pk}/")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert json.loads(text) == {"error": "No live page with this id that this visitor may see."}
        assert CODE not in driver.page_source and "How to choose" not in driver.page_source
    screenshot(driver, "api-private-page-refused")
    driver.get(f"{base}/guides-fr/")  # redirected to the page, which asks for its password
    assert CODE not in driver.page_source
    assert driver.find_elements(By.CSS_SELECTOR, "input[type=password]")
    screenshot(driver, "variant-url-asks-for-password")


def test_unpublishing_a_page_in_the_browser_unpublishes_its_variant_everywhere(
    driver, live_server, site, screenshot
):
    guides, variant = site
    base = live_server.url
    log_in(driver, base)
    driver.get(f"{base}/admin/pages/{guides.pk}/unpublish/")
    # The variant is one of the page's references (the demo's home page links to it too).
    wait(driver).until(lambda d: "This content page is referenced 2 times" in body_text(d))
    screenshot(driver, "unpublish-screen-lists-variant")
    driver.find_element(By.CSS_SELECTOR, "form[action*='unpublish'] [type=submit]").click()
    wait(driver).until(lambda d: "Its page variants were unpublished too" in d.page_source)
    screenshot(driver, "unpublished-with-variant")
    variant.refresh_from_db()
    guides.refresh_from_db()
    assert not guides.live and not variant.live

    driver.delete_all_cookies()  # a visitor now, French-speaking or not
    for path in ("/guides-fr/", "/guides/"):
        driver.get(base + path)
        assert CODE not in driver.page_source
    driver.get(f"{base}/sitemap.xml")
    assert "guides-fr" not in driver.page_source and "/guides/" not in driver.page_source
    driver.get(f"{base}/api/personalization/pages/{variant.pk}/")
    assert CODE not in driver.page_source
    assert "No live page with this id" in driver.page_source


def test_moving_a_page_in_the_browser_lists_its_variant_and_takes_it_along(
    driver, live_server, site, screenshot
):
    guides, variant = site
    home = guides.get_parent()
    learn = HomePage(title="Learn", slug="learn")
    home.add_child(instance=learn)
    learn.save_revision().publish()
    base = live_server.url
    log_in(driver, base)
    driver.get(f"{base}/admin/pages/{guides.pk}/move/{learn.pk}/confirm/")
    listed = wait(driver).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, ".messages .tailored-variant-list"))
    )
    assert "Guides FR" in listed.text
    assert "Moving this page also moves its page variants" in body_text(driver)
    screenshot(driver, "move-screen-lists-variant")
    driver.find_element(By.CSS_SELECTOR, "form[action*='move'] [type=submit]").click()
    wait(driver).until(lambda d: "Its page variants moved too" in d.page_source)
    screenshot(driver, "moved-with-variant")
    variant.refresh_from_db()
    assert variant.get_parent().pk == learn.pk

    driver.delete_all_cookies()
    driver.get(f"{base}/learn/guides-fr/")  # outside its segment: sent to the page
    assert CODE not in driver.page_source
    assert driver.current_url.rstrip("/").endswith("/learn/guides")
