"""Statements with whole arrays as parameters, for PostgreSQL: ``unnest(%b::text[], ...)``
inserts, upserts and lookups of thousands of rows in one statement.

Django's PostgreSQL backend binds parameters on the client (psycopg's ``ClientCursor``, the
default unless ``server_side_binding`` is set): each value of an array is quoted and escaped in
Python, which costs more than the statement itself for a few thousand strings. The cursor given
here binds on the server and sends ``%b`` parameters in PostgreSQL's binary format: nothing is
quoted. It shares Django's connection, so it runs inside the caller's transaction
(``transaction.atomic``), but Django's query log and execute wrappers do not see it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


def available() -> bool:
    """Whether the default database is PostgreSQL (callers keep an ORM path for the others)."""
    return connection.vendor == "postgresql"


@contextmanager
def cursor() -> Iterator:
    """A server-binding psycopg cursor on Django's (default) connection."""
    import psycopg  # only on PostgreSQL: a site on another database need not install it

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as raw:
        yield raw
