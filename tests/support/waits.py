"""Wait conditions and clicks shared by the browser tests (imported where selenium is known
present)."""

import time

from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def gone(element):
    """Wait condition: the element left the document (the page navigated). Chromium sometimes
    answers for an element of a page being replaced with a plain error ("Node with given id
    does not belong to the document") rather than a stale-element one: both mean gone."""

    def predicate(_driver) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReferenceException included
            return True
        return False

    return predicate


def click(driver, element, timeout: float = 15):
    """Click like a person would; when Wagtail's sticky footer covers the element after
    scrolling, click it with a script instead (the same event for the page's handlers)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    WebDriverWait(driver, timeout).until(EC.element_to_be_clickable(element))
    try:
        element.click()
    except ElementClickInterceptedException:
        driver.execute_script("arguments[0].focus(); arguments[0].click()", element)


OPTION = "//div[contains(@class, 'w-combobox__option')][normalize-space()='{label}']"


def choose_option(driver, label: str, timeout: float = 15):
    """Click the block chooser's option ``label``: the chooser may redraw between finding the
    option and clicking it on a busy machine (a stale element), so find it again then; an
    option under Wagtail's sticky footer is scrolled to the middle first (:func:`click`)."""
    for attempt in range(5):
        option = WebDriverWait(driver, timeout).until(
            EC.element_to_be_clickable((By.XPATH, OPTION.format(label=label)))
        )
        try:
            click(driver, option, timeout)
            return
        except (StaleElementReferenceException, ElementNotInteractableException):
            if attempt == 4:
                raise
            time.sleep(0.3)
