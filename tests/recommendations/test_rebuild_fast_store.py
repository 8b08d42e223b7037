"""After the fast store is lost, ``rebuild_fast_store`` gives a consented visitor back their
recommendation fields (recent and bought items, "for you"), so their next exchange returns the
list it returned before; the sums the lists come from live in the database and are not lost."""

import io
import time

import pytest
from django.core.management import call_command

from consent.log import append_records
from consent.models import ConsentRecord
from recommendations import api, factorisation
from recommendations.models import FactorModel, Pair
from segments.api import get_backend
from tests.experiments.engine import consented, drain, send
from tests.recommendations.helpers import product

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh(backend):
    api.forget()
    factorisation.forget()
    yield
    api.forget()
    factorisation.forget()


def _lose_the_fast_store() -> None:
    """Every key of this test run's prefix deleted (the test settings give each run its own
    prefix; nothing else in the Redis database is touched)."""
    backend = get_backend()
    keys = list(backend.client.scan_iter(match=f"{backend.prefix}:*", count=1000))
    assert keys
    backend.client.delete(*keys)
    backend._groups_ready.clear()


@pytest.mark.parametrize("model", [False, True], ids=["co-occurrence", "factorisation model"])
def test_a_visitors_list_comes_back_with_the_rebuild(model):
    mug, apron, trowel, gloves = (
        product(title, code, category)
        for title, code, category in (
            ("Ceramic mug", "85123A", "kitchen"),
            ("Linen apron", "71053", "kitchen"),
            ("Garden trowel", "22423", "garden"),
            ("Garden gloves", "84879", "garden"),
        )
    )
    if model:  # an active "for you" model, which ranks apron before gloves for a mug
        np = pytest.importorskip("numpy")
        buffer = io.BytesIO()
        rows = [[1, 0, 0], [1, 0, 0.2], [0, 1, 0], [0.5, 0, 0]]  # mug apron trowel gloves
        np.save(buffer, np.array(rows, dtype=np.float32), allow_pickle=False)
        version = FactorModel.objects.create(
            item_ids=[mug.pk, apron.pk, trowel.pk, gloves.pk], factors=buffer.getvalue()
        )
        factorisation.activate(version)
        factorisation.forget()
    others = [consented(f"rebuild-other-{n}") for n in range(3)]
    me = consented("rebuild-me")
    append_records(  # durable consent records: what the rebuild restores visitors from
        [*others, me],
        granted=frozenset({"personalization"}),
        denied=frozenset(),
        method=ConsentRecord.Method.API,
    )
    # Each event in a millisecond of its own: the order they were sent in is their time order
    # (events of the same millisecond count in order of item id: the test below).
    t = time.time() - 60
    for n, key in enumerate(others):
        send(key, page=mug.pk, ts=t + n)
        send(key, page=apron.pk, ts=t + n + 0.1)
        send(key, "purchase", page=gloves.pk, ts=t + n + 0.2)
        drain(key)
    send(me, page=trowel.pk, ts=t + 10)
    send(me, "purchase", page=mug.pk, ts=t + 11)
    drain(me)
    before = send(me, page=mug.pk).recommendations  # the next exchange's fields (not drained)
    assert before["fy"] and before["recent"] == f"{trowel.pk},{mug.pk}"
    assert before["bought"] == str(mug.pk)
    pairs = Pair.objects.count()

    _lose_the_fast_store()
    assert send(me, page=mug.pk).recommendations == {}  # no consent mirrored, nothing kept
    call_command("rebuild_fast_store", stdout=io.StringIO())

    after = send(me, page=mug.pk).recommendations
    assert after == before
    assert api.recommend("for_you", fields=after).items
    assert Pair.objects.count() == pairs  # the rebuild counted nothing again
    # Co-occurrence puts the bought-with-a-mug gloves first; the model, the apron.
    assert after["fy"].split(",")[0] == str(apron.pk if model else gloves.pk)


def test_events_of_the_same_millisecond_count_in_order_of_item_id():
    """The stream keeps times to the millisecond, and the durable log cannot tell which of two
    events of the same millisecond came first: the drain and the rebuild both take them in
    order of item id (docs/recommendations.md), so the rebuilt hash is the one the drain
    wrote, whatever order the events arrived in."""
    mug, apron = product("Ceramic mug", "85123A"), product("Linen apron", "71053")
    assert mug.pk < apron.pk
    me = consented("rebuild-same-ms")
    append_records(
        [me],
        granted=frozenset({"personalization"}),
        denied=frozenset(),
        method=ConsentRecord.Method.API,
    )
    t = round(time.time() - 60, 3)
    send(me, page=apron.pk, ts=t)  # the larger id arrives first
    send(me, page=mug.pk, ts=t)
    drain(me)
    before = get_backend().visitor_data(me).fields
    assert before["r:recent"] == f"{mug.pk},{apron.pk}"  # the larger id is the latest

    _lose_the_fast_store()
    call_command("rebuild_fast_store", stdout=io.StringIO())
    after = get_backend().visitor_data(me).fields
    assert {f: v for f, v in after.items() if f.startswith("r:")} == {
        f: v for f, v in before.items() if f.startswith("r:")
    }
