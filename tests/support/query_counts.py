"""Query counts of admin listings and reports: they must not grow with the rows shown."""

from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def queries_for(client: Client, url: str, params: dict | None = None) -> tuple[int, list[str]]:
    """(number of queries, their SQL) of one GET, which must answer 200."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, (url, response.status_code)
    return len(captured), [q["sql"] for q in captured.captured_queries]


def assert_queries_do_not_grow(
    client: Client, url: str, build: Callable[[int], None], n: int = 4, params: dict | None = None
) -> int:
    """Build ``n`` rows, count the queries of ``url``; build ``2 * n`` more (3n in all) and
    count again: the counts must be equal. Returns the count. ``build(k)`` adds ``k`` rows."""
    build(n)
    client.get(url, params or {})  # warm per-process caches (content types, settings)
    few, _sql = queries_for(client, url, params)
    build(2 * n)
    many, sql = queries_for(client, url, params)
    assert many == few, f"{few} queries with {n} rows, {many} with {3 * n}:\n" + "\n".join(sql)
    return few
