"""The demo as a new user meets it: ``make demo`` seeds the site, and a product page shows
recommendations to a visitor who has decided nothing yet (no history anywhere: the "similar
pages" lists built from the pages' text fill "bought together" in)."""

import pytest
from django.test import Client

from demo.home.models import ProductPage
from recommendations import api
from tests.builders import demo_site

pytestmark = pytest.mark.django_db


def test_a_fresh_demos_product_page_shows_recommendations_to_a_new_visitor():
    pytest.importorskip("sklearn")  # "similar pages" needs the [ml] extra
    api.forget()
    demo_site()
    page = ProductPage.objects.get(stock_code="22423")
    response = Client().get(page.url)
    html = response.content.decode()
    assert response.status_code == 200
    cards = html.split('class="recommendation-cards"')
    assert len(cards) == 3  # "Bought together" and "For you", both filled in
    assert 'data-recommendation-strategy="similar"' in html
    assert f'data-recommendation-item="{page.pk}"' not in html  # never itself
    others = set(ProductPage.objects.exclude(pk=page.pk).values_list("pk", flat=True))
    together, for_you = (
        [int(part.split('"')[0]) for part in block.split('data-recommendation-item="')[1:]]
        for block in cards[1:]
    )
    assert len(together) == len(for_you) == 4 and set(together + for_you) <= others
    # The second block falls back on the same similar pages: it shows the next ones, not the
    # same four again.
    assert not set(together) & set(for_you)


def test_the_rebuild_command_does_the_nightly_work_now_or_only_the_similar_lists():
    pytest.importorskip("sklearn")
    from io import StringIO

    from django.core.management import call_command

    from recommendations.models import Pair, SimilarList

    demo_site()
    SimilarList.objects.all().delete()
    mug, apron = ProductPage.objects.exclude(stock_code="")[:2]
    Pair.objects.create(a=mug.pk, b=apron.pk, weight=1.0)  # not in the log
    out = StringIO()
    call_command("recommendations_rebuild", similar_only=True, stdout=out)
    assert "similar 27" in out.getvalue() and SimilarList.objects.count() == 27
    assert Pair.objects.count() == 1  # the sums stay
    call_command("recommendations_rebuild", stdout=out)
    assert not Pair.objects.exists()  # counted afresh from the log, which holds nothing
    assert SimilarList.objects.count() == 27
