"""Recommendations through the real stream, drain, Redis and PostgreSQL: items follow their
pages, co-occurrence and "for you" lists kept by the drain step, the one round trip returning
the visitor's list, and the privacy tools."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from wagtail.models import PageViewRestriction

from consent.log import append_records
from consent.models import ConsentRecord
from consent.privacy import erase_visitor, export_visitor
from recommendations import api
from recommendations.models import Item, Pair, Popularity
from recommendations.rebuild import rebuild
from segments.api import get_backend
from tests.experiments.engine import consented, drain, redeliver, send
from tests.recommendations.helpers import product

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh(backend):
    api.forget()
    yield
    api.forget()


@pytest.fixture
def shop():
    return {
        "mug": product("Ceramic mug", "85123A", "kitchen"),
        "apron": product("Linen apron", "71053", "kitchen"),
        "trowel": product("Garden trowel", "22423", "garden"),
        "gloves": product("Garden gloves", "84879", "garden"),
    }


def _pairs():
    return {(p.a, p.b): p.weight for p in Pair.objects.all()}


def test_items_follow_their_pages_and_only_live_public_unexpired_pages_are_recommendable(shop):
    mug = shop["mug"]
    assert Item.objects.get(page=mug).external_id == "85123A"
    assert mug.pk in api.catalogue().allowed
    mug.unpublish()
    api.forget()
    assert mug.pk not in api.catalogue().allowed
    PageViewRestriction.objects.create(page=shop["apron"], restriction_type="login")
    shop["trowel"].expire_at = timezone.now() - timedelta(minutes=1)
    shop["trowel"].save()
    api.sync_items()
    allowed = api.catalogue().allowed
    assert shop["apron"].pk not in allowed and shop["trowel"].pk not in allowed
    assert shop["gloves"].pk in allowed
    draft = product("Draft", "X1", live=False)
    api.sync_page(draft)
    assert draft.pk not in api.catalogue().allowed


def test_bought_together_is_kept_by_the_drain_and_read_by_the_next_page(shop):
    mug, apron, trowel = shop["mug"], shop["apron"], shop["trowel"]
    for n in range(2):
        key = consented(f"recs-buyer-{n}")
        send(key, page=mug.pk)
        send(key, "purchase", category="71053", value=24)  # imported-style: by external id
        drain(key)
    browser = consented("recs-browser")
    send(browser, page=mug.pk)
    send(browser, page=trowel.pk)
    entries = drain(browser)
    pairs = _pairs()
    assert pairs[(mug.pk, apron.pk)] > pairs[(mug.pk, trowel.pk)] > 0
    assert pairs[(mug.pk, apron.pk)] == pairs[(apron.pk, mug.pk)]
    before = _pairs()
    redeliver(browser, entries)  # the same batch again: nothing counts twice
    assert _pairs() == before

    together = api.recommend("together", page_id=mug.pk, count=3)
    assert together.strategy == "together"
    assert together.items[:2] == [apron.pk, trowel.pk]

    # The visitor's own list is in their hash, and the request's round trip returns it.
    fields = get_backend().visitor_data(browser).fields
    assert fields["r:recent"] == f"{mug.pk},{trowel.pk}"
    exchanged = send(browser, page=trowel.pk)
    assert exchanged.recommendations["fy"] == fields["r:fy"]
    assert apron.pk in [int(i) for i in fields["r:fy"].split(",")]
    mine = api.recommend("for_you", fields=exchanged.recommendations, count=2)
    assert mine.strategy == "for_you" and mine.items[0] == apron.pk


def test_purchases_are_left_out_of_for_you_and_popular_counts_per_segment(shop):
    mug, apron = shop["mug"], shop["apron"]
    other = consented("recs-other")
    send(other, page=mug.pk)
    send(other, page=apron.pk)
    drain(other)
    key = consented("recs-buyer")
    send(key, "purchase", page=apron.pk)
    send(key, page=mug.pk)
    drain(key)
    fields = get_backend().visitor_data(key).fields
    assert fields["r:bought"] == str(apron.pk)
    assert str(apron.pk) not in fields["r:fy"].split(",")
    popular = dict(Popularity.objects.filter(segment="").values_list("item", "weight"))
    assert popular[apron.pk] > popular[mug.pk]  # a purchase outweighs a view
    assert api.recommend("popular", count=1).items == [apron.pk]


def test_without_consent_nothing_is_counted_and_for_you_falls_back(shop):
    from consent.api import notice_version
    from segments.api import mirror_consent

    key = consented("recs-refuser")
    mirror_consent(key, frozenset(), notice_version(), time.time() + 3600)
    send(key, page=shop["mug"].pk)
    send(key, page=shop["apron"].pk)
    drain(key)
    assert not Pair.objects.exists() and not Popularity.objects.exists()
    result = api.recommend("for_you", fields=None, page_id=shop["mug"].pk, count=2)
    assert result.requested == "for_you" and result.strategy != "for_you"


def test_unpublished_items_are_never_recommended_even_when_counted(shop):
    mug, apron = shop["mug"], shop["apron"]
    key = consented("recs-unpub")
    send(key, page=mug.pk)
    send(key, page=apron.pk)
    drain(key)
    assert api.recommend("together", page_id=mug.pk).items[:1] == [apron.pk]
    apron.unpublish()
    api.forget()
    assert apron.pk not in api.recommend("together", page_id=mug.pk).items


def test_export_lists_and_erasure_removes_them_at_once_and_the_counts_at_the_rebuild(shop):
    mug, apron, trowel = shop["mug"], shop["apron"], shop["trowel"]
    keep = consented("recs-keep")
    gone = consented("recs-gone")
    append_records(  # durable consent records: the rebuild reads consented visitors only
        [keep, gone],
        granted=frozenset({"personalization"}),
        denied=frozenset(),
        method=ConsentRecord.Method.API,
    )
    send(keep, page=mug.pk)
    send(keep, page=trowel.pk)
    drain(keep)
    for _ in range(3):
        send(gone, page=mug.pk)
        send(gone, "purchase", page=apron.pk)
    drain(gone)
    assert api.recommend("together", page_id=mug.pk).items[0] == apron.pk
    rebuild()  # before the erasure, the rebuild finds what the drain kept
    assert _pairs()[(mug.pk, apron.pk)] > _pairs()[(mug.pk, trowel.pk)] > 0
    exported = export_visitor(gone)["recommendations.lists"]
    assert exported[0]["recent_items"] == [mug.pk, apron.pk]

    erase_visitor(gone)
    assert not any(f.startswith("r:") for f in get_backend().visitor_data(gone).fields)
    rebuild()
    api.forget()
    pairs = _pairs()
    assert (mug.pk, apron.pk) not in pairs and pairs[(mug.pk, trowel.pk)] > 0
    assert api.recommend("together", page_id=mug.pk).items[0] == trowel.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the timer thread commits
def test_increments_are_gathered_and_written_together_by_the_workers_timer(
    shop, settings, monkeypatch
):
    from recommendations import buffer
    from tests.support.worker import wait_for

    # Long enough for the three drains below on a busy machine, whatever the last write took
    # (the back-off starts from none).
    settings.RECOMMENDATIONS_FLUSH_SECONDS = 3
    monkeypatch.setattr(buffer, "_last_write_seconds", 0.0)
    buffer.discard()  # no timed write left by another test
    mug, apron = shop["mug"], shop["apron"]
    t = round(time.time(), 3) - 1  # the views' times: their weights do not depend on delays
    for n in range(2):
        key = consented(f"recs-gathered-{n}")
        send(key, page=mug.pk, ts=t)
        send(key, page=apron.pk, ts=t + 0.5)
        drain(key)
    # Not written yet, but already in the next visitor's list (stored + gathered).
    assert not Pair.objects.exists()
    both = pytest.approx(2 * _one_view(t + 0.5))
    assert buffer.pending_links(mug.pk) == {apron.pk: both}
    key = consented("recs-gathered-next")
    send(key, page=mug.pk)
    drain(key)
    assert get_backend().visitor_data(key).fields["r:fy"] == str(apron.pk)
    # The timer writes the two batches' increments as one row per pair.
    assert wait_for(lambda: len(_pairs()) == 2, timeout=30)
    assert _pairs()[(mug.pk, apron.pk)] == both
    assert buffer.pending_links(mug.pk) == {}


def _one_view(ts: float | None = None):
    from recommendations.scoring import decayed

    return decayed(1.0, time.time() if ts is None else ts, 30 * 86400)


def test_an_items_neighbours_are_built_once_per_flush_interval(shop, settings, monkeypatch):
    """The drain builds an item's neighbours (stored + gathered) for the visitors' lists at
    most once per RECOMMENDATIONS_FLUSH_SECONDS, not for every batch: within the interval, a
    list comes from the neighbours as they were built (one query per batch, for the items due)."""
    from recommendations import buffer, pipeline

    settings.RECOMMENDATIONS_FLUSH_SECONDS = 60
    pipeline.forget()
    read = []
    top = pipeline.top_neighbours
    monkeypatch.setattr(
        pipeline, "top_neighbours", lambda items, n: read.append(items) or top(items, n)
    )
    mug, apron, trowel = shop["mug"], shop["apron"], shop["trowel"]
    try:
        for n, other in enumerate((apron, trowel)):
            key = consented(f"recs-built-once-{n}")
            send(key, page=mug.pk)
            send(key, page=other.pk)
            drain(key)
        key = consented("recs-built-once-last")
        send(key, page=mug.pk)
        drain(key)
        assert read == [{mug.pk, apron.pk}, {trowel.pk}]  # the mug's built once
        # The mug's neighbours as built with the first batch: the apron; the trowel, gathered
        # with the second, shows after the interval.
        assert get_backend().visitor_data(key).fields["r:fy"] == str(apron.pk)
    finally:
        buffer.discard()
        pipeline.forget()


def test_after_a_slow_write_the_next_waits_ten_times_as_long(settings, monkeypatch):
    from recommendations import buffer, scoring

    settings.RECOMMENDATIONS_FLUSH_SECONDS = 0.2
    monkeypatch.setattr(buffer, "save", lambda deltas: time.sleep(0.1))
    monkeypatch.setattr(buffer, "_last_write_seconds", 0.0)
    assert buffer._interval() == pytest.approx(0.2)
    buffer.add_back(scoring.Deltas.of_pairs({(1, 2): 1.0}, {}))
    buffer.flush()
    assert buffer._interval() >= 1.0  # 10 x 0.1 s, not 0.2 s
