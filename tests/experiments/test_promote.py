"""Promote the winner: a new published revision of the page whose personalised block (or page
variants) gives the segment the winning arm's content, in the page's and the experiment's
history; the experiment stops with its winner."""

import pytest
from wagtail.models import ModelLogEntry, PageLogEntry, Revision

from demo.home.models import ContentPage
from experiments import actions, targets
from experiments.models import Experiment
from tests.builders import page_variant, personalised_page, segment
from tests.cms_blocks.helpers import user

from .helpers import experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def page():
    segment("engaged")
    segment("loyal")
    return personalised_page(
        variants=[
            ("engaged", "Offer A"),
            ("engaged", "Offer B"),
            (["engaged", "loyal"], "Offer C"),
            ("loyal", "Loyal only"),
        ]
    )


def block_experiment(page, winners=("A", "B", "C")):
    block_id, options = next(
        (bid, targets.block_options(page, bid)) for bid in targets.personalised_blocks(page)
    )
    by_text = {}
    for option, variant in zip(options[1:], page.body[0].value["variants"], strict=True):
        text = str(variant["content"][0].value)
        by_text[text.removeprefix("<p>").removesuffix("</p>").split()[-1]] = option.key
    exp = experiment(
        page=page,
        block_id=block_id,
        segment=page and targets_segment(),
        status=Experiment.Status.RUNNING,
        arms=[("Default", "default", 1)] + [(w, by_text[w], 1) for w in winners],
    )
    return exp, by_text


def targets_segment():
    from segments.models import Segment

    return Segment.objects.get(slug="engaged")


def live_variants(page):
    page = ContentPage.objects.get(pk=page.pk)
    block = page.body[0]
    return [(str(v["content"][0].value), sorted(v["segments"])) for v in block.value["variants"]]


def test_the_winning_variant_becomes_what_the_segment_sees(page):
    exp, _keys = block_experiment(page)
    editor = user("editor", superuser=True)
    revisions_before = Revision.objects.filter(object_id=str(page.pk)).count()

    published = actions.promote(exp, exp.arms.get(name="B"), user=editor)

    # B first; A (engaged only) removed; C keeps "loyal" but no longer "engaged".
    assert live_variants(page) == [
        ("<p>Offer B</p>", ["engaged"]),
        ("<p>Offer C</p>", ["loyal"]),
        ("<p>Loyal only</p>", ["loyal"]),
    ]
    assert Revision.objects.filter(object_id=str(page.pk)).count() == revisions_before + 1
    assert ContentPage.objects.get(pk=page.pk).live_revision_id == published[0]
    assert PageLogEntry.objects.filter(page=page, action="wagtail.publish", user=editor).exists()
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.STOPPED and exp.promoted_at is not None
    assert exp.winner.name == "B"
    entry = ModelLogEntry.objects.get(action=actions.PROMOTE)
    assert entry.user == editor and entry.data["revisions"] == published


def test_when_the_default_wins_the_segment_sees_the_default(page):
    exp, _keys = block_experiment(page)
    actions.promote(exp, exp.arms.get(name="Default"))
    assert live_variants(page) == [
        ("<p>Offer C</p>", ["loyal"]),
        ("<p>Loyal only</p>", ["loyal"]),
    ]


def test_promote_starts_from_the_live_page_not_a_draft(page):
    exp, _keys = block_experiment(page)
    draft = ContentPage.objects.get(pk=page.pk)
    draft.title = "Unfinished draft"
    draft.save_revision()
    actions.promote(exp, exp.arms.get(name="A"))
    assert ContentPage.objects.get(pk=page.pk).title == "Offers"


def test_promote_twice_is_refused(page):
    exp, _keys = block_experiment(page)
    actions.promote(exp, exp.arms.get(name="A"))
    with pytest.raises(actions.ExperimentActionError):
        actions.promote(exp, exp.arms.get(name="B"))


def test_page_experiment_winner_gets_the_segment_and_losers_lose_it():
    engaged = segment("engaged")
    canonical = personalised_page(slug="landing", title="Landing")
    first = page_variant(canonical, ["engaged", "loyal"], "First", slug="landing-1")
    second = page_variant(canonical, ["loyal"], "Second", slug="landing-2")
    exp = experiment(
        "landing-test",
        kind=Experiment.Kind.PAGE,
        page=canonical,
        segment=engaged,
        arms=[
            ("Canonical", "default", 1),
            ("First", str(first.pk), 1),
            ("Second", str(second.pk), 1),
        ],
        status=Experiment.Status.RUNNING,
    )
    actions.promote(exp, exp.arms.get(name="Second"))
    assert ContentPage.objects.get(pk=first.pk).variant_segments == ["loyal"]
    assert ContentPage.objects.get(pk=second.pk).variant_segments == ["loyal", "engaged"]
    assert PageLogEntry.objects.filter(page=second, action="wagtail.publish").exists()


def test_promote_needs_permission_to_publish_the_page(page):
    exp, _keys = block_experiment(page)
    editor = user("runner", "experiments.run_experiment")
    with pytest.raises(actions.ExperimentActionError, match="publish"):
        actions.promote(exp, exp.arms.get(name="B"), user=editor)
    exp.refresh_from_db()
    assert exp.promoted_at is None and exp.status == Experiment.Status.RUNNING


def holdout(page, **fields):
    block_id = next(iter(targets.personalised_blocks(page)))
    return experiment(
        "holdout-test",
        kind=Experiment.Kind.HOLDOUT,
        page=page,
        segment=targets_segment(),
        status=Experiment.Status.RUNNING,
        arms=[("Default", "default", 1), ("Personalised", targets.PERSONALISED_KEY, 1)],
        **({"block_id": block_id} | fields),
    )


def test_a_holdout_that_personalization_wins_changes_no_content(page):
    exp = holdout(page)
    assert actions.problems(exp) == []
    before = Revision.objects.filter(object_id=str(page.pk)).count()
    assert actions.promote(exp, exp.arms.get(name="Personalised")) == []
    assert Revision.objects.filter(object_id=str(page.pk)).count() == before
    exp.refresh_from_db()
    assert exp.winner.name == "Personalised" and exp.status == Experiment.Status.STOPPED


def test_a_block_holdout_that_the_default_wins_drops_the_segments_variants(page):
    exp = holdout(page)
    actions.promote(exp, exp.arms.get(name="Default"))
    assert live_variants(page) == [
        ("<p>Offer C</p>", ["loyal"]),
        ("<p>Loyal only</p>", ["loyal"]),
    ]


def test_a_whole_page_holdout_that_the_default_wins_is_left_to_the_editor(page):
    exp = holdout(page, block_id="")
    with pytest.raises(actions.ExperimentActionError, match="whole-page holdout"):
        actions.promote(exp, exp.arms.get(name="Default"))


def test_a_winner_tested_on_everyone_becomes_the_default_content(page):
    exp, _keys = block_experiment(page, winners=("A", "B"))
    Experiment.objects.filter(pk=exp.pk).update(segment=None)
    exp.refresh_from_db()
    actions.promote(exp, exp.arms.get(name="B"))
    live = ContentPage.objects.get(pk=page.pk).body[0].value
    assert str(live["default"][0].value) == "<p>Offer B</p>"
    # A lost (removed); B became the default; C and the loyal variant were not in the test.
    assert live_variants(page) == [
        ("<p>Offer C</p>", ["engaged", "loyal"]),
        ("<p>Loyal only</p>", ["loyal"]),
    ]


def test_a_draft_is_not_promoted(page):
    exp, _keys = block_experiment(page)
    Experiment.objects.filter(pk=exp.pk).update(status=Experiment.Status.DRAFT)
    exp.refresh_from_db()
    with pytest.raises(actions.ExperimentActionError, match="draft"):
        actions.promote(exp, exp.arms.get(name="B"))


# -- a whole-page experiment: what the next visitor is served -------------------------------------
ONE_VIEW = {"type": "event_count", "event": "page_view", "min": 1, "window": "10m"}


def served(client, path="/landing/") -> str:
    html = client.get(path).content.decode()
    found = [text for text in ("CANONICAL", "FIRST", "SECOND") if f"{text} CONTENT" in html]
    assert len(found) == 1, html
    return found[0]


def in_segment(client, path="/landing/"):
    """A consenting visitor whose page view has been drained: in the one-view segments."""
    from consent.models import ConsentRecord

    from .engine import drain

    client.get(path)
    drain(ConsentRecord.objects.order_by("-pk").first().visitor_key)
    return client


@pytest.fixture
def landing(backend):
    from experiments import runtime

    runtime.forget()
    segment("engaged", rule=ONE_VIEW)
    segment("loyal", rule=ONE_VIEW, priority=5)
    canonical = personalised_page(
        slug="landing", title="Landing", default="CANONICAL CONTENT", variants=()
    )
    first = page_variant(canonical, "engaged", "FIRST CONTENT", slug="landing-1", title="First")
    second = page_variant(canonical, "loyal", "SECOND CONTENT", slug="landing-2", title="Second")
    yield canonical, first, second
    runtime.forget()


def page_experiment(canonical, first, second, weights=(1, 1, 1), **fields):
    from experiments import runtime

    exp = experiment(
        "landing-test",
        kind=Experiment.Kind.PAGE,
        page=canonical,
        arms=[
            ("Canonical", "default", weights[0]),
            ("First", str(first.pk), weights[1]),
            ("Second", str(second.pk), weights[2]),
        ],
        status=Experiment.Status.RUNNING,
        **fields,
    )
    runtime.forget()
    return exp


def test_a_page_experiment_on_everyone_publishes_the_winner_as_the_page(landing):
    from tests.builders import browser, consenting_browser

    canonical, first, second = landing
    exp = page_experiment(canonical, first, second, weights=(0, 1, 0))
    enrolled = in_segment(consenting_browser())  # in both segments, enrolled in "First"
    assert served(enrolled) == "FIRST"
    editor = user("publisher", superuser=True)
    revisions = actions.promote(exp, exp.arms.get(name="Second"), user=editor)

    live = ContentPage.objects.get(pk=canonical.pk)
    assert live.live_revision_id == revisions[0] and len(revisions) == 1
    assert (live.title, live.slug, live.variant_of_id, live.url_path) == (
        "Second",
        "landing",
        None,
        canonical.url_path,
    )
    assert not ContentPage.objects.get(pk=first.pk).live
    assert not ContentPage.objects.get(pk=second.pk).live  # its content is the page's now
    assert PageLogEntry.objects.filter(page=canonical, action="wagtail.publish").exists()
    assert PageLogEntry.objects.filter(
        page=canonical, action=actions.PROMOTE, user=editor, data__experiment=exp.pk
    ).exists()
    assert PageLogEntry.objects.filter(page=first, action="wagtail.unpublish").exists()

    from experiments import runtime

    runtime.forget()  # what another process sees within EXPERIMENTS_DEFINITIONS_CACHE_SECONDS
    assert served(enrolled) == "SECOND"  # enrolled in a losing arm, in both segments
    assert served(in_segment(consenting_browser())) == "SECOND"  # a new consenting visitor
    assert served(browser()) == "SECOND"  # and one without consent


def test_a_page_experiment_on_everyone_that_the_page_wins_drops_the_variants(landing):
    from tests.builders import consenting_browser

    canonical, first, second = landing
    exp = page_experiment(canonical, first, second)
    assert actions.promote(exp, exp.arms.get(name="Canonical")) == []
    assert not ContentPage.objects.filter(pk__in=[first.pk, second.pk], live=True).exists()
    assert served(in_segment(consenting_browser())) == "CANONICAL"


def test_a_page_experiment_in_a_segment_serves_the_winner_to_the_segment(landing):
    from segments.models import Segment
    from tests.builders import browser, consenting_browser

    canonical, first, second = landing
    exp = page_experiment(canonical, first, second, segment=Segment.objects.get(slug="engaged"))
    actions.promote(exp, exp.arms.get(name="Second"))
    assert not ContentPage.objects.get(pk=first.pk).live  # it named only the segment
    assert ContentPage.objects.get(pk=second.pk).variant_segments == ["loyal", "engaged"]
    assert served(in_segment(consenting_browser())) == "SECOND"  # engaged (and loyal)
    assert served(browser()) == "CANONICAL"  # outside the segment: as before


def test_a_change_the_page_refuses_is_an_action_error_not_a_crash(landing, monkeypatch):
    from django.core.exceptions import ValidationError

    canonical, first, second = landing
    exp = page_experiment(canonical, first, second)

    def refuse(self):
        raise ValidationError("Pages here need an approval.")

    monkeypatch.setattr(ContentPage, "full_clean", lambda self, *a, **k: refuse(self))
    with pytest.raises(actions.ExperimentActionError, match="approval"):
        actions.promote(exp, exp.arms.get(name="Second"))
    exp.refresh_from_db()
    assert exp.promoted_at is None
    assert ContentPage.objects.get(pk=first.pk).live  # nothing half done
