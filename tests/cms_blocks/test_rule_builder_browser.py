"""The rule builder in a real browser offers a site's own condition type (the example of
docs/rules.md, registered as a site would) and the query-parameter and page-visit conditions,
with controls drawn from their fields, and saves what the editor chose; the saved segment then
decides pages.

Headless Chromium against the live demo site; real PostgreSQL and Redis.
"""

from datetime import UTC, datetime

import pytest
import time_machine

from segments.models import Segment
from segments.rules import register_condition, unregister_condition
from tests.acceptance.helpers import segments_of, visitor
from tests.conftest import IN_CI
from tests.support.docs import docs_condition_example

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select

    from tests.cms_blocks.test_editor_browser import (
        builder_settled,
        click,
        editor,  # noqa: F401  (the fixture)
        log_in,
        wait,
    )
except ImportError:
    if IN_CI:
        raise
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WeekdayIn = docs_condition_example()["WeekdayIn"]


@pytest.fixture
def weekday_in():
    register_condition(WeekdayIn)
    try:
        yield
    finally:
        unregister_condition("weekday_in")


def _add(driver, root, label: str):
    adder = root.find_element(By.CSS_SELECTOR, "[data-add-condition]")
    Select(adder).select_by_visible_text(label)


def test_a_registered_condition_type_and_the_query_condition_are_built_with_clicks(
    driver, live_server, editor, weekday_in, screenshot
):
    base = live_server.url
    log_in(driver, base)
    driver.get(base + "/admin/snippets/segments/segment/add/")
    driver.find_element(By.ID, "id_name").send_keys("Weekend newsletter readers")
    slug = driver.find_element(By.ID, "id_slug")
    slug.clear()
    slug.send_keys("weekend-newsletter")
    root = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[data-rule-builder].rule-builder--ready"))
    )
    options = [
        o.text for o in Select(root.find_element(By.CSS_SELECTOR, "[data-add-condition]")).options
    ]
    assert "Day of the week" in options and "Query parameter" in options
    assert "Page views of a page" in options

    _add(driver, root, "Day of the week")
    day = root.find_element(By.CSS_SELECTOR, "[data-path='conditions[1]']")
    assert day.get_attribute("data-type") == "weekday_in"
    days = Select(day.find_element(By.CSS_SELECTOR, "[data-field=days]"))
    assert [o.text for o in days.options][6] == "Sunday"
    days.deselect_all()
    days.select_by_visible_text("Sunday")
    driver.execute_script(
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}))",
        day.find_element(By.CSS_SELECTOR, "[data-field=days]"),
    )

    _add(driver, root, "Query parameter")
    query = root.find_element(By.CSS_SELECTOR, "[data-path='conditions[2]']")
    param = query.find_element(By.CSS_SELECTOR, "[data-field=param]")
    param.clear()
    param.send_keys("ref")
    Select(query.find_element(By.CSS_SELECTOR, "[data-field=op]")).select_by_visible_text("is")
    query = root.find_element(By.CSS_SELECTOR, "[data-path='conditions[2]']")
    query.find_element(By.CSS_SELECTOR, "[data-field=value]").send_keys("newsletter")

    # The first condition (the builder's default page views) goes.
    remove = "[data-path='conditions[0]'] > .rule-builder__head .rule-builder__remove"
    click(driver, root.find_element(By.CSS_SELECTOR, remove))
    description = root.find_element(By.CSS_SELECTOR, "[data-rule-builder-description]")
    wait(driver).until(
        lambda d: (
            "a visit on Sunday" in description.text
            and "the query parameter “ref” is “newsletter”" in description.text
        )
    )
    builder_settled(driver)
    assert root.find_elements(By.CSS_SELECTOR, ".rule-builder__problem") == []
    screenshot(driver, "rule-builder-site-condition")
    click(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit].action-save"))
    wait(driver).until(lambda d: Segment.objects.filter(slug="weekend-newsletter").exists())
    assert Segment.objects.get(slug="weekend-newsletter").rule == {
        "type": "all",
        "conditions": [
            {"type": "weekday_in", "days": [6]},
            {"type": "query", "param": "ref", "op": "eq", "value": "newsletter"},
        ],
    }
    # A Sunday's visitor from the newsletter is in it (decided in the request, no consent).
    with time_machine.travel(datetime(2017, 1, 1, 12, tzinfo=UTC), tick=False):
        assert "weekend-newsletter" in segments_of(visitor().get("/?ref=newsletter"))
        assert "weekend-newsletter" not in segments_of(visitor().get("/"))
