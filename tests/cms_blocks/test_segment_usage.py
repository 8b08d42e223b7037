"""A segment's usage is true (cms_blocks.references): Wagtail's reference index knows every page,
personalised block, page variant and other model that uses a segment; the segment listing
counts them, the delete confirmation lists them, and a segment in use cannot be deleted (one at
a time or in bulk) nor have its slug changed. Real PostgreSQL and Redis."""

import json

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps
from django.urls import reverse
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel
from wagtail.models import ReferenceIndex

import segments.definitions
from cms_blocks.references import index_segment_referrers
from segments.models import Segment
from tests.builders import page_variant, paragraph, personalised_page, segment
from tests.cms_blocks.helpers import login

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


@pytest.fixture
def french():
    seg = segment("french", FRENCH, name="French speakers")
    segments.definitions.forget_definitions()
    return seg


@pytest.fixture
def admin():
    return login("boss", superuser=True)


def used_by(seg) -> dict[str, list[str]]:
    """What the reference index says uses ``seg``: {object: [field or block, ...]}."""
    return {
        str(obj): sorted(str(r.describe_source_field()) for r in refs)
        for obj, refs in ReferenceIndex.get_grouped_references_to(seg)
    }


def test_pages_blocks_and_page_variants_using_a_segment_are_its_usage(french):
    engaged = segment("engaged")
    offers = personalised_page(variants=[("french", "Bonjour"), ("engaged", "Welcome back")])
    guides = personalised_page(
        slug="guides", title="Guides", variants=[(["engaged", "french"], "Both", "all")]
    )
    variant = page_variant(guides, "french", "Guides FR", slug="guides-fr", title="Guides FR")
    assert used_by(french) == {
        "Offers": ["Body → Personalised content"],
        "Guides": ["Body → Personalised content"],
        "Guides FR": ["Variant segments"],
    }
    assert set(used_by(engaged)) == {"Offers", "Guides"}
    # Removing the uses removes the usage.
    variant.variant_segments = ["engaged"]
    variant.save()
    offers.body = [paragraph("No longer personalised")]
    offers.save()
    assert used_by(french) == {"Guides": ["Body → Personalised content"]}


def test_a_draft_page_holding_a_variant_counts_too(french):
    personalised_page(variants=[("french", "Bonjour")], live=False)
    assert set(used_by(french)) == {"Offers"}


def test_the_listing_counts_each_segments_users(french, admin):
    segment("unused", name="Unused")
    personalised_page(variants=[("french", "Bonjour")])
    personalised_page(slug="two", title="Two", variants=[("french", "Salut")])
    response = admin.get(reverse(Segment.snippet_viewset.get_url_name("list")))
    html = " ".join(response.content.decode().split())
    usage = reverse(Segment.snippet_viewset.get_url_name("usage"), args=[french.pk])
    assert f'<a href="{usage}"> Used 2 times </a>' in html
    assert "Used 0 times" in html


def test_the_delete_confirmation_lists_every_user_and_refuses(french, admin):
    offers = personalised_page(variants=[("french", "Bonjour")])
    guides = personalised_page(slug="guides", title="Guides", variants=[])
    page_variant(guides, "french", "Guides FR", slug="guides-fr", title="Guides FR")
    url = reverse(Segment.snippet_viewset.get_url_name("delete"), args=[french.pk])
    html = " ".join(admin.get(url).content.decode().split())
    assert "This segment is referenced 2 times" in html
    assert "prevent it from being deleted" in html
    edit = reverse("wagtailadmin_pages:edit", args=[offers.pk])
    assert f'<a href="{edit}">Offers</a> (page): Body → Personalised content' in html
    assert "Guides FR</a> (page variant of “Guides”): Variant segments" in html
    assert "Yes, delete" not in html
    admin.post(url)
    assert Segment.objects.filter(pk=french.pk).exists()


def test_an_unused_segment_is_deleted_as_before(french, admin):
    url = reverse(Segment.snippet_viewset.get_url_name("delete"), args=[french.pk])
    assert "Yes, delete" in admin.get(url).content.decode()
    admin.post(url)
    assert not Segment.objects.filter(pk=french.pk).exists()


def test_bulk_deleting_segments_in_use_is_refused_by_name(french, admin):
    unused = segment("unused", name="Unused")
    personalised_page(variants=[("french", "Bonjour")])
    url = reverse("wagtail_bulk_action", args=["segments", "segment", "delete"])
    response = admin.post(f"{url}?id={french.pk}&id={unused.pk}", follow=True)
    assert Segment.objects.filter(pk__in=[french.pk, unused.pk]).count() == 2
    assert "Nothing was deleted: “French speakers” used by content" in response.content.decode()


def test_a_segment_in_use_keeps_its_slug(french, admin):
    personalised_page(variants=[("french", "Bonjour")])
    url = reverse(Segment.snippet_viewset.get_url_name("edit"), args=[french.pk])
    data = {
        "name": "French",
        "slug": "francophones",
        "description": "",
        "rule": json.dumps(FRENCH),
        "priority": "0",
        "enabled": "on",
    }
    response = admin.post(url, data)
    assert response.status_code == 200
    assert "its slug cannot change while it is in use" in response.content.decode()
    french.refresh_from_db()
    assert french.slug == "french"
    data["slug"] = "french"  # other changes are saved as ever
    assert admin.post(url, data).status_code == 302
    french.refresh_from_db()
    assert french.name == "French"


@isolate_apps("cms_blocks")
def test_any_model_referring_to_a_segment_is_indexed_without_registering_it(french):
    """An app's own model with a foreign key to a segment (an experiment, say), or an inline
    child of one with a ParentalKey, is found by the reference index automatically."""

    class Campaign(models.Model):
        name = models.CharField(max_length=20)
        segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="+")

        class Meta:
            app_label = "cms_blocks"

        def __str__(self):
            return self.name

    class Plan(ClusterableModel):
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "cms_blocks"

        def __str__(self):
            return self.name

    class PlanStep(models.Model):
        plan = ParentalKey(Plan, on_delete=models.CASCADE, related_name="steps")
        segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")

        class Meta:
            app_label = "cms_blocks"

        def __str__(self):
            return f"step of {self.plan_id}"

    isolated = Campaign._meta.apps
    registered = index_segment_referrers(isolated)
    assert Campaign in registered and Plan in registered and PlanStep not in registered
    assert ReferenceIndex.is_indexed(Campaign) and ReferenceIndex.is_indexed(Plan)
    assert Plan not in index_segment_referrers()  # the site's own apps: not these
    with connection.schema_editor() as editor:
        for model in (Campaign, Plan, PlanStep):
            editor.create_model(model)
    campaign = Campaign.objects.create(name="Spring", segment=french)
    plan = Plan(name="Onboarding", steps=[PlanStep(segment=french)])
    plan.save()
    for obj in (campaign, plan):
        ReferenceIndex.create_or_update_for_object(obj)  # (the save signal names global apps)
    references = ReferenceIndex.get_references_to(french)
    assert references.count() == 2
    assert {r.model_path for r in references} == {"segment", "steps.item.segment"}


def test_rebuilding_the_index_finds_existing_content(french):
    from django.core.management import call_command

    personalised_page(variants=[("french", "Bonjour")])
    ReferenceIndex.objects.all().delete()  # content from before the index knew segments
    assert not used_by(french)
    call_command("rebuild_references_index", verbosity=0)
    assert set(used_by(french)) == {"Offers"}


def test_rendering_a_page_queries_no_segment(french):
    """Declaring references costs saves only: serving a personalised page does not look
    segments up (their slugs are read as stored)."""
    from django.test.utils import CaptureQueriesContext

    from tests.builders import browser

    personalised_page(variants=[("french", "Bonjour")])
    client = browser()
    client.get("/offers/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/offers/").status_code == 200
    assert not [q for q in queries.captured_queries if "segments_segment" in q["sql"]]


def test_an_experiment_inside_a_segment_is_its_usage_and_keeps_it(french, admin):
    """The suite's own experiments count as users of the segment they run in: listed in its
    usage and on its delete screen, which refuses while the experiment exists."""
    from experiments.models import Experiment

    experiment = Experiment.objects.create(
        name="Banner test", key="banner-test", kind=Experiment.Kind.BLOCK, segment=french
    )
    assert used_by(french) == {"Banner test": ["Segment"]}
    url = reverse(Segment.snippet_viewset.get_url_name("delete"), args=[french.pk])
    html = " ".join(admin.get(url).content.decode().split())
    assert "This segment is referenced 1 time" in html
    assert "Banner test" in html
    assert "Yes, delete" not in html
    admin.post(url)
    assert Segment.objects.filter(pk=french.pk).exists()
    experiment.delete()
    assert used_by(french) == {}
