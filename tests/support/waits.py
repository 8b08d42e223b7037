"""Wait conditions shared by the browser tests (imported where selenium is known present)."""

from selenium.common.exceptions import WebDriverException


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
