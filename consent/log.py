"""The consent log's store: records appended to the HMAC hash chain under a row lock on the
chain head, and the latest decision read back. The one place that writes ConsentRecord rows;
``actions`` (decisions) and ``privacy`` (erasure, retention, verification) both use it."""

from datetime import timedelta
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from . import chain, notices, standing
from .conf import get_setting
from .identity import chain_key
from .models import ChainHead, ConsentRecord
from .signals import consent_changed, consents_recorded


def record_fields(record: ConsentRecord) -> dict:
    return {
        "seq": record.seq,
        "visitor_key": record.visitor_key,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat(),
        "granted": list(record.granted),
        "denied": list(record.denied),
        "notice_version": record.notice_version,
        "notice_hash": record.notice_hash,
        "method": record.method,
        "language": record.language,
        "gpc": record.gpc,
        "prev_hash": record.prev_hash,
        "record_hash": record.record_hash,
    }


def locked_head() -> ChainHead:
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # normally created after migrate; never two heads (primary key 1)
        ChainHead.objects.get_or_create(pk=1)
        head = ChainHead.objects.select_for_update().get(pk=1)
    return head


def append_record(
    key: str,
    *,
    granted: frozenset[str],
    denied: frozenset[str],
    method: str,
    language: str = "",
    gpc: bool = False,
    expires_at=None,
) -> ConsentRecord:
    """Append one record to the chain (serialised by a row lock on the chain head) and, once
    committed, tell the other apps (``consent_changed``)."""
    (record,) = append_records(
        [key],
        granted=granted,
        denied=denied,
        method=method,
        language=language,
        gpc=gpc,
        expires_at=expires_at,
    )
    return record


def append_records(
    keys: list[str],
    *,
    granted: frozenset[str],
    denied: frozenset[str],
    method: str,
    language: str = "",
    gpc: bool = False,
    expires_at=None,
) -> list[ConsentRecord]:
    """The same decision for one or many visitors (imports): one lock on the chain head, one
    insert, the chain computed in order; once committed, ``consents_recorded`` is sent for the
    batch, then ``consent_changed`` for each."""
    if not keys:
        return []
    notice = notices.current()
    now = timezone.now()
    expires_at = expires_at or now + timedelta(seconds=get_setting("CONSENT_MAX_AGE"))
    key_bytes = chain_key()
    with transaction.atomic():
        head = locked_head()
        seq, prev = head.last_seq, head.last_hash or chain.GENESIS
        records = []
        for key in keys:
            seq += 1
            record = ConsentRecord(
                seq=seq,
                visitor_key=key,
                created_at=now,
                expires_at=expires_at,
                granted=sorted(granted),
                denied=sorted(denied),
                notice_version=str(notice.version),
                notice_hash=notice.text_hash,
                method=method,
                language=language[:16],
                gpc=gpc,
                prev_hash=prev,
            )
            record.record_hash = prev = chain.digest(key_bytes, record_fields(record), prev)
            records.append(record)
        ConsentRecord.objects.bulk_create(records, batch_size=1000)
        ChainHead.objects.filter(pk=1).update(last_seq=seq, last_hash=prev)

        def announce():
            # First: from now on, older copies of these visitors' cookies count for nothing.
            standing.remember(
                {
                    r.visitor_key: standing.of_record(method, r.seq, granted, r.created_at)
                    for r in records
                }
            )
            consents_recorded.send(
                sender=ConsentRecord,
                visitor_keys=tuple(r.visitor_key for r in records),
                granted=frozenset(granted),
                denied=frozenset(denied),
                notice_version=str(notice.version),
                expires_at=expires_at,
            )
            for record in records:
                consent_changed.send(
                    sender=ConsentRecord,
                    visitor_key=record.visitor_key,
                    granted=frozenset(granted),
                    denied=frozenset(denied),
                    notice_version=record.notice_version,
                    expires_at=expires_at,
                )

        transaction.on_commit(announce)
    return records


class Grants(NamedTuple):
    """The latest decision of one identifier, as the fast store's mirror keeps it: the purposes
    it grants, its notice version, its expiry (epoch seconds) and its standing
    (:meth:`consent.standing.Standing.encode`: which copies of the cookie still count)."""

    granted: frozenset[str]
    version: str
    expiry: float
    standing: str


def latest_grants(key: str) -> Grants | None:
    """The server's own record of ``key``'s current decision (one query).

    ``None`` when nothing is recorded. Used to rebuild the fast store's copy of consent state.
    """
    record = ConsentRecord.objects.filter(visitor_key=key).order_by("-seq").first()
    if record is None:
        return None
    return _grants(record)


def latest_grants_many(keys) -> dict[str, Grants]:
    """:func:`latest_grants` of each of ``keys`` that has a record, a query per 1,000 keys
    (each key's records read in order, its last one kept: visitors have a few decisions)."""
    keys = list(dict.fromkeys(keys))
    out: dict[str, Grants] = {}
    for start in range(0, len(keys), 1000):
        latest: dict[str, ConsentRecord] = {}
        for record in ConsentRecord.objects.filter(
            visitor_key__in=keys[start : start + 1000]
        ).order_by("visitor_key", "seq"):
            latest[record.visitor_key] = record
        out.update((key, _grants(record)) for key, record in latest.items())
    return out


def _grants(record: ConsentRecord) -> Grants:
    decided = standing.of_record(record.method, record.seq, record.granted, record.created_at)
    return Grants(
        frozenset(record.granted),
        record.notice_version,
        record.expires_at.timestamp(),
        decided.encode(),
    )
