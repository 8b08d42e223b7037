"""The results screen in a real browser (headless Chromium against the live demo site): the
demo's experiment with measured statistics and two snapshots shows its verdict, the table of
arms with their lift, the lift chart, and the edit screen lists the arms, goals and what the
home page offers to test. Screenshots go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from experiments.models import Experiment, ResultSnapshot
from experiments.results import analyse
from tests.builders import demo_site
from tests.conftest import IN_CI

from .helpers import conversions, statistic

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


@pytest.fixture
def measured():
    demo_site(experiment=True)
    exp = Experiment.objects.get()
    clicks, shop = exp.goals.all()
    for arm, (n, k) in enumerate([(1000, 100), (1000, 150)]):
        statistic(exp, arm, conversions(n, k), goal=clicks)
    # Two snapshots an hour apart (the chart's two points), then the full numbers.
    ResultSnapshot.objects.create(
        experiment=exp, computed_at=timezone.now() - timedelta(hours=1), data=analyse(exp)
    )
    exp.statistics.all().delete()
    for arm, (n, k, bought) in enumerate([(4000, 400, 100), (4000, 800, 140)]):
        statistic(exp, arm, conversions(n, k), goal=clicks)
        statistic(exp, arm, conversions(n, bought), goal=shop)
        statistic(exp, arm, conversions(n // 2, k // 2), goal=clicks, segment="engaged")
    ResultSnapshot.objects.create(experiment=exp, computed_at=timezone.now(), data=analyse(exp))
    get_user_model().objects.create_superuser("chief", "chief@example.com", "chief-pass")
    return exp


def test_the_results_screen_reads_at_a_glance(driver, live_server, measured, screenshot):
    base = live_server.url
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("chief")
    driver.find_element(By.NAME, "password").send_keys("chief-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 15).until(EC.url_to_be(base + "/admin/"))

    driver.get(f"{base}/admin/experiments/{measured.pk}/results/")
    summary = WebDriverWait(driver, 15).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, ".experiments-summary"))
    )
    screenshot(driver, "results")
    assert summary.get_attribute("data-verdict") == "winner"
    assert "Discount" in summary.text and "Sample ratio as planned" in summary.text
    rows = driver.find_elements(By.CSS_SELECTOR, "[data-testid=experiment-results] tbody tr")
    texts = [r.text for r in rows]
    assert any("Discount" in t and "+100.0%" in t for t in texts), texts
    assert any("Engaged" in t for t in texts), texts
    chart = driver.find_element(By.CSS_SELECTOR, "figure.tailored-chart svg")
    driver.execute_script("arguments[0].scrollIntoView()", chart)
    screenshot(driver, "chart")
    figure = driver.find_element(By.CSS_SELECTOR, "figure.tailored-chart")
    assert "now" in figure.text
    figure.screenshot(str(screenshot(driver, "page").with_name("results-lift-chart.png")))
    assert chart.get_attribute("role") == "img"

    driver.get(f"{base}/admin/experiments/edit/{measured.pk}/")
    WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.ID, "experiment-options")))
    screenshot(driver, "edit")
    assert driver.find_element(By.ID, "experiment-arms").is_displayed()
    assert "Personalised block" in driver.find_element(By.ID, "experiment-options").text
    # The actions are in the header's "more" dropdown (tests/experiments/test_admin.py checks
    # them); its confirmation pages open here.
    driver.get(f"{base}/admin/experiments/{measured.pk}/pause/")
    assert "Pause this experiment?" in driver.find_element(By.TAG_NAME, "main").text
