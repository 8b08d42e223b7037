"""Whose data may still be used (``consent.api.consented_keys``): the one-statement reading on
PostgreSQL gives what the record-by-record reading gives, case by case."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from consent import notices
from consent.api import consented_keys, external_key, external_keys
from consent.log import append_record
from consent.models import ErasureRequest
from tailored import bulksql

pytestmark = [pytest.mark.services, pytest.mark.django_db]

OPTIONAL = frozenset({"analytics", "personalization", "marketing"})


def record(key: str, granted, expires_at=None):
    granted = frozenset(granted)
    append_record(
        key, granted=granted, denied=OPTIONAL - granted, method="api", expires_at=expires_at
    )


def erasure(key: str, *, cancelled: bool) -> None:
    now = timezone.now()
    ErasureRequest.objects.create(
        visitor_key=key, reason="request", due_at=now, cancelled_at=now if cancelled else None
    )


def cases() -> dict[str, bool]:
    """Visitor key: whether their data may be used for marketing."""
    now = timezone.now()
    record("f" * 32, {"marketing"})
    notices.publish(banner_text="A notice changed since")  # "f" decided under the earlier one
    record("a" * 32, {"marketing", "personalization"})
    record("b" * 32, {"marketing"})
    record("b" * 32, {"personalization"})  # withdrew marketing since
    record("c" * 32, {"personalization"})
    record("d" * 32, {"personalization"})
    record("d" * 32, {"marketing"})  # granted it since
    record("e" * 32, {"marketing"}, expires_at=now - timedelta(seconds=1))
    record("1" * 32, {"marketing"})
    erasure("1" * 32, cancelled=False)
    record("2" * 32, {"marketing"})
    erasure("2" * 32, cancelled=True)
    return {
        "a" * 32: True,
        "b" * 32: False,
        "c" * 32: False,
        "d" * 32: True,
        "e" * 32: False,
        "f" * 32: False,
        "1" * 32: False,
        "2" * 32: True,
        "3" * 32: False,  # never recorded
    }


def test_the_statement_on_postgresql_reads_consent_as_the_records_do():
    if not bulksql.available():
        pytest.skip("PostgreSQL only")
    expected = cases()
    keys = sorted(expected)
    wanted = {k for k, allowed in expected.items() if allowed}
    assert consented_keys(keys, "marketing") == wanted
    with mock.patch.object(bulksql, "available", return_value=False):
        assert consented_keys(keys, "marketing") == wanted
    assert consented_keys([], "marketing") == set()
    assert consented_keys(keys + keys, "marketing") == wanted


def test_external_keys_are_external_key_of_each():
    ids = ["17850", "caf\u00e9", "", "x" * 300]
    assert external_keys("shop", ids) == [external_key("shop", i) for i in ids]
    assert external_keys("shop", []) == []
