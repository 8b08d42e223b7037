"""The stored sums (co-occurrence, popularity): increments and the strongest neighbours."""

from django.db import connection, transaction

from . import scoring
from .models import Pair, Popularity

_CHUNK = 500


def save(deltas: scoring.Deltas) -> None:
    """Add the increments to the stored sums (one upsert per chunk, in key order)."""
    with transaction.atomic():
        _upsert(Pair._meta.db_table, ("a", "b"), sorted(deltas.pairs.items()))
        _upsert(Popularity._meta.db_table, ("segment", "item"), sorted(deltas.popular.items()))


def _upsert(table: str, key: tuple[str, str], rows: list) -> None:
    if not rows:
        return
    qn = connection.ops.quote_name
    if connection.vendor == "postgresql":
        # Three array parameters, whatever the number of rows: no statement to parse per row.
        kind = "text" if key[0] == "segment" else "integer"
        sql = f"INSERT INTO {qn(table)} ({qn(key[0])}, {qn(key[1])}, {qn('weight')}) "
        sql += f"SELECT * FROM unnest(%s::{kind}[], %s::integer[], %s::float8[]) "  # noqa: S608
        sql += f"ON CONFLICT ({qn(key[0])}, {qn(key[1])}) DO UPDATE SET "
        sql += f"{qn('weight')} = {qn(table)}.{qn('weight')} + EXCLUDED.{qn('weight')}"
        with connection.cursor() as cursor:
            for start in range(0, len(rows), 20_000):
                chunk = rows[start : start + 20_000]
                cursor.execute(
                    sql,
                    [
                        [k1 for (k1, _k2), _w in chunk],
                        [k2 for (_k1, k2), _w in chunk],
                        [w for _k, w in chunk],
                    ],
                )
        return
    columns = f"{qn(key[0])}, {qn(key[1])}, {qn('weight')}"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            params = [v for (k1, k2), w in chunk for v in (k1, k2, w)]
            # Only quoted identifiers of our own and placeholders go into the statement.
            sql = f"INSERT INTO {qn(table)} ({columns}) VALUES {values} "  # noqa: S608
            sql += f"ON CONFLICT ({qn(key[0])}, {qn(key[1])}) DO UPDATE SET "
            sql += f"{qn('weight')} = {qn(table)}.{qn('weight')} + EXCLUDED.{qn('weight')}"
            cursor.execute(sql, params)


def top_neighbours(items: set[int], length: int) -> dict[int, list[tuple[int, float]]]:
    """Each item's ``length`` strongest co-occurring items (best first), in one query."""
    if not items:
        return {}
    qn = connection.ops.quote_name
    table = qn(Pair._meta.db_table)
    marks = ", ".join(["%s"] * len(items))
    with connection.cursor() as cursor:
        sql = "SELECT a, b, weight FROM (SELECT a, b, weight, ROW_NUMBER() OVER "
        sql += f"(PARTITION BY a ORDER BY weight DESC, b) AS n FROM {table} "
        sql += f"WHERE a IN ({marks}) AND weight > 0) ranked WHERE n <= %s ORDER BY a, n"
        cursor.execute(sql, [*sorted(items), length])
        out: dict[int, list[tuple[int, float]]] = {}
        for a, b, w in cursor.fetchall():
            out.setdefault(a, []).append((b, w))
    return out
