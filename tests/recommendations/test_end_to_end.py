"""End to end with the real services: consented visitors view and buy demo products through
the request path, a real Celery worker drains the stream (the recommendations step keeps the
co-occurrence), and the next product page shows the expected "bought together" list."""

import json
import re

import pytest

from demo.home.models import ProductPage
from recommendations import api
from tests.builders import consenting_browser, demo_site
from tests.support.worker import wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _together(html: str) -> tuple[str, list[str]] | None:
    """The strategy and the titles of the page's first recommendations block (None: no block
    on the page, as while the worker has drained nothing and no list has any item)."""
    found = re.search(
        r'data-tailored-variant="(\w+)"[^>]*data-recommendation-strategy.*?</section>', html, re.S
    )
    if not found:
        return None
    return found.group(1), re.findall(
        r'data-recommendation-item="\d+"><a [^>]*>([^<]+)</a>', found.group(0)
    )


def test_views_and_purchases_through_a_real_worker_give_the_bought_together_list(
    celery_worker, backend
):
    demo_site()
    cakestand = ProductPage.objects.get(stock_code="22423")
    bunting = ProductPage.objects.get(stock_code="47566")
    ornament = ProductPage.objects.get(stock_code="84879")
    for n in range(3):
        client = consenting_browser()
        assert client.get(cakestand.url).status_code == 200
        response = client.post(
            "/api/events/",
            json.dumps({"events": [{"name": "purchase", "properties": {"page": bunting.pk}}]}),
            content_type="application/json",
        )
        assert response.status_code in (200, 202), response.content
        if n == 0:
            assert client.get(ornament.url).status_code == 200

    def listed():
        api.forget()
        block = _together(consenting_browser().get(cakestand.url).content.decode())
        return block if block and block[0] == "together" and len(block[1]) >= 2 else None

    found = wait_for(listed, timeout=30)
    assert found, "the worker never built the bought-together list"
    assert found[1][:2] == [bunting.title, ornament.title]
