"""Builders for the recommendations tests: product pages (items) under the demo's home."""

from decimal import Decimal

from demo.home.models import ProductPage
from recommendations import api
from tests.builders import home_page


def product(title: str, code: str = "", category: str = "kitchen", *, live: bool = True, **kw):
    """A published demo product page (an item; ``code`` its external id)."""
    page = ProductPage(
        title=title,
        price=Decimal("9.99"),
        category=category,
        stock_code=code,
        body=[("paragraph", f"<p>{kw.pop('text', title)}</p>")],
        live=live,
        **kw,
    )
    home_page().add_child(instance=page)
    if live:
        page.save_revision().publish()
    api.forget()
    return page
