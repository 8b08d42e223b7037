"""Cache-safe mode with experiments, against a real shared cache in Redis: a consented visitor's
arm is part of the key, so visitors in different arms never share a cached response, and
visitors in the same arm and segments still do."""

import pytest

from consent.models import ConsentRecord
from experiments import runtime
from tests.builders import browser, consenting_browser, home_page, personalised_page, segment
from tests.experiments.engine import experiment
from tests.personalization.test_cache_safe import shared_cache, visit  # noqa: F401

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DEFAULT, VARIANT = "Standard offer", "ENGAGED offer"


@pytest.fixture
def offers(shared_cache, backend):  # noqa: F811
    runtime.forget()
    home_page()
    segment("engaged")
    page = personalised_page()
    block = page.body[0]
    e = experiment(
        page=page,
        block_id=block.id,
        arms=(("default", 1.0), (block.value["variants"].bound_blocks[0].id, 1.0)),
    )
    yield runtime.running().by_id[str(e.pk)]
    runtime.forget()


def shown(response) -> str:
    html = response.content.decode()
    assert (DEFAULT in html) != (VARIANT in html)
    return VARIANT if VARIANT in html else DEFAULT


def visitors_by_arm(experiment, wanted: int = 2) -> dict[int, list]:
    """Consenting browsers, grouped by the arm the experiment gives them."""
    found: dict[int, list] = {0: [], 1: []}
    while min(len(v) for v in found.values()) < wanted:
        client = consenting_browser()
        key = ConsentRecord.objects.order_by("-pk").first().visitor_key
        found[experiment.arm(key)].append(client)
    return found


def test_visitors_in_different_arms_never_share_and_in_the_same_arm_do(offers):
    visit(browser())  # the first render of the page learns its segments: not stored
    by_arm = visitors_by_arm(offers)
    first = visit(by_arm[0][0])
    assert shown(first) == DEFAULT
    other_arm = visit(by_arm[1][0])
    assert shown(other_arm) == VARIANT  # never the other arm's cached page
    assert other_arm["X-Tailored-Cache"] != "hit"
    again = visit(by_arm[1][0])
    assert shown(again) == VARIANT
    same_arm = visit(by_arm[0][1])
    assert (shown(same_arm), same_arm["X-Tailored-Cache"]) == (DEFAULT, "hit")
    same_arm = visit(by_arm[1][1])
    assert (shown(same_arm), same_arm["X-Tailored-Cache"]) == (VARIANT, "hit")
    assert shown(visit(browser())) == DEFAULT  # no consent: no experiment


def test_globally_held_out_visitors_share_one_page_whatever_their_arms_elsewhere(offers, settings):
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 1.0  # every consented visitor held out
    experiment("global", kind="global_holdout", arms=(("default", 1.0), ("personalised", 1.0)))
    visit(browser())  # the first render of the page learns its segments: not stored
    by_arm = visitors_by_arm(offers)
    first = visit(by_arm[0][0])
    assert shown(first) == DEFAULT
    # Default content for both: the block experiment's arm decides nothing for them, and is
    # not part of their key.
    other_arm = visit(by_arm[1][0])
    assert (shown(other_arm), other_arm["X-Tailored-Cache"]) == (DEFAULT, "hit")
