"""Similar pages by their text (TF-IDF, the [ml] extra), and "similar" falling back on
"popular" without it."""

import pytest

from recommendations import api
from recommendations.models import Popularity, SimilarList
from recommendations.similar import build_similar
from tests.recommendations.helpers import product

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    api.forget()
    yield
    api.forget()


def test_similar_pages_by_their_text():
    pytest.importorskip("sklearn")
    tea = product("Teapot", text="A porcelain teapot for loose leaf tea, with a strainer.")
    cup = product("Tea cup", text="A porcelain cup for tea, a saucer included.")
    spade = product("Spade", "S1", "garden", text="A steel spade for digging the garden.")
    fork = product("Garden fork", "S2", "garden", text="A steel fork for digging garden soil.")
    assert build_similar() == 4
    assert SimilarList.objects.get(item=tea.pk).similar[0] == cup.pk
    api.forget()
    got = api.recommend("similar", page_id=spade.pk, count=1)
    assert got.items == [fork.pk] and got.strategy == "similar"


def test_similar_falls_back_on_popular_without_lists():
    a, b = product("A"), product("B")
    Popularity.objects.create(segment="", item=b.pk, weight=1.0)
    got = api.recommend("similar", page_id=a.pk, count=2)
    assert got.items == [b.pk] and got.strategy == "popular" and got.requested == "similar"
