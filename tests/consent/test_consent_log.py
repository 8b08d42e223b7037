"""The consent log: append-only, hash-chained, and verifiable."""

import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from consent.actions import record_decision
from consent.log import append_record
from consent.models import AppendOnlyError, ChainHead, ConsentRecord
from consent.policy import UNDECIDED
from consent.privacy import verify_log

pytestmark = pytest.mark.django_db


def _records(n=4):
    for _ in range(n):
        record_decision(UNDECIDED, "accept_all", [], language="en")
    return list(ConsentRecord.objects.order_by("seq"))


def _problems():
    return [p.kind for p in verify_log()[1]]


def _sql(statement, *params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_records_chain_and_verify():
    records = _records()
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.record_hash for a, b in itertools.pairwise(records))
    assert verify_log() == (4, [])
    call_command("consent_verify_log")  # exits 0


def test_a_record_holds_the_proof():
    record = record_decision(UNDECIDED, "custom", ["analytics"], language="fr", gpc=True).record
    assert record.granted == ["analytics"]
    assert record.denied == ["marketing", "personalization"]
    assert record.method == "banner_custom" and record.language == "fr" and record.gpc
    assert len(record.notice_hash) == 64 and record.notice_version
    assert record.expires_at > record.created_at


def test_the_orm_refuses_updates_and_deletes():
    record = _records(1)[0]
    record.method = "api"
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        ConsentRecord.objects.filter(pk=record.pk).update(method="api")
    with pytest.raises(AppendOnlyError):
        ConsentRecord.objects.all().delete()
    assert ConsentRecord.objects.get().method == "banner_accept_all"


def test_a_modified_record_is_detected():
    records = _records()
    _sql("UPDATE consent_consentrecord SET granted = %s WHERE seq = 2", '["marketing"]')
    assert "modified" in _problems()
    with pytest.raises(CommandError):
        call_command("consent_verify_log")
    assert records


def test_a_deleted_record_is_detected():
    _records()
    _sql("DELETE FROM consent_consentrecord WHERE seq = 2")
    assert "missing" in _problems()


def test_a_deleted_last_record_is_detected():
    _records()
    _sql("DELETE FROM consent_consentrecord WHERE seq = 4")
    assert "truncated" in _problems()


def test_an_inserted_record_is_detected():
    records = _records()
    forged = records[1]
    _sql(
        "UPDATE consent_consentrecord SET seq = seq + 1 WHERE seq >= 3"
        if connection.vendor != "postgresql"
        else "UPDATE consent_consentrecord SET seq = seq + 100 WHERE seq >= 3"
    )
    # A forger without the chain key copies a record's hash as its link and makes up its own.
    _sql(
        "INSERT INTO consent_consentrecord (seq, visitor_key, created_at, expires_at, granted, "
        "denied, notice_version, notice_hash, method, language, gpc, prev_hash, record_hash) "
        "SELECT 3, visitor_key, created_at, expires_at, granted, denied, notice_version, "
        "notice_hash, 'withdraw', language, gpc, record_hash, %s FROM consent_consentrecord "
        "WHERE seq = 2",
        "f" * 64,
    )
    kinds = _problems()
    assert "modified" in kinds
    assert forged.seq == 2


def test_reordered_records_are_detected():
    records = _records(3)
    # Swap the content of records 2 and 3 (keeping their seq numbers).
    a, b = records[1], records[2]
    _sql("UPDATE consent_consentrecord SET seq = 999 WHERE seq = 2")
    _sql("UPDATE consent_consentrecord SET seq = 2 WHERE seq = 3")
    _sql("UPDATE consent_consentrecord SET seq = 3 WHERE seq = 999")
    kinds = _problems()
    assert "reordered" in kinds or "inserted" in kinds
    assert a.pk != b.pk


def test_a_forged_head_does_not_hide_a_forged_record():
    _records(2)
    _sql("UPDATE consent_consentrecord SET method = 'withdraw' WHERE seq = 2")
    head = ChainHead.objects.get(pk=1)
    assert head.last_seq == 2
    assert "modified" in _problems()


def test_deleting_or_renaming_a_purpose_never_rewrites_history():
    from cookie_consent.models import CookieGroup

    record = record_decision(UNDECIDED, "accept_all", []).record
    CookieGroup.objects.filter(varname="marketing").delete()
    CookieGroup.objects.filter(varname="analytics").update(name="Statistics")
    assert ConsentRecord.objects.get(pk=record.pk).granted == [
        "analytics",
        "marketing",
        "personalization",
    ]
    assert verify_log()[1] == []


def test_appending_is_serialised_by_the_head():
    for n in range(3):
        append_record("a" * 32, granted=frozenset(), denied=frozenset(), method="api")
        assert ChainHead.objects.get(pk=1).last_seq == n + 1
