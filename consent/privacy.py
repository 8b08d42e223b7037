"""Data-subject requests (access, portability, erasure), retention and log verification."""

import csv
import io
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tailored.spreadsheet import safe_cell as csv_safe_cell

from . import chain
from .actions import schedule_erasure
from .conf import get_setting
from .identity import chain_key
from .log import append_record, locked_head, record_fields
from .models import ChainHead, ConsentRecord, ErasureRequest, IdentityLink, PurgeLog
from .policy import NECESSARY
from .registry import handlers

logger = logging.getLogger(__name__)

# What an export shows of each consent record: the chained fields (the key is the export's
# subject) and the record's hash, by which it can be verified.
_CONSENT_FIELDS = (*(f for f in chain.FIELDS if f != "visitor_key"), "record_hash")


# -- access and portability (Art. 15, 20) ----------------------------------------------------
def export_visitor(key: str) -> dict[str, list[dict]]:
    """Everything held about one pseudonymous visitor, as named tables of plain rows."""
    data: dict[str, list[dict]] = {
        "consent_records": [
            {f: _jsonable(getattr(r, f)) for f in _CONSENT_FIELDS}
            for r in ConsentRecord.objects.filter(visitor_key=key).order_by("seq")
        ],
        "erasures": [
            {
                "reason": e.reason,
                "purposes": e.purposes,
                "requested_at": e.requested_at.isoformat(),
                "completed_at": e.completed_at.isoformat() if e.completed_at else None,
            }
            for e in ErasureRequest.objects.filter(visitor_key=key)
        ],
        "linked_accounts": [
            {"user_key": link.user_key, "created_at": link.created_at.isoformat()}
            for link in IdentityLink.objects.filter(visitor_key=key)
        ],
    }
    for name, handler in handlers.export.items():
        for table, rows in handler(key).items():
            data[f"{name}.{table}"] = rows
    return {"visitor_key": [{"visitor_key": key}], **data}


def _jsonable(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_csv(data: dict[str, list[dict]]) -> str:
    """One CSV of (table, row, field, value), so any table shape fits in one download."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "row", "field", "value"])
    for table, rows in data.items():
        for n, row in enumerate(rows):
            for field, value in row.items():
                writer.writerow([table, n, field, csv_safe_cell(value)])
    return out.getvalue()


# -- erasure (Art. 17) -------------------------------------------------------------------------
def erase_visitor(key: str, reason: str = ErasureRequest.Reason.REQUEST) -> ErasureRequest:
    """Erase everything about ``key`` now: consent is recorded as withdrawn (the tombstone that
    drops events still in flight or arriving later), then every registered handler removes
    what it holds. The consent records and a minimal erasure record are kept as proof."""
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    with transaction.atomic():
        append_record(
            key, granted=frozenset(), denied=optional, method=ConsentRecord.Method.ERASURE
        )
        request = schedule_erasure(key, reason, frozenset(), delay=0)
        IdentityLink.objects.filter(visitor_key=key).delete()
    return run_erasure(request.pk)


def run_erasure(pk: int) -> ErasureRequest:
    """Carry out one erasure request (idempotent; skipped if cancelled or done)."""
    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=pk)
        if request.completed_at or request.cancelled_at:
            return request
        purposes = frozenset(request.purposes)
        result = {
            name: handler(request.visitor_key, purposes)
            for name, handler in handlers.erasure.items()
        }
        request.result = result
        request.completed_at = timezone.now()
        request.save(update_fields=["result", "completed_at"])
    logger.info("Erasure %s completed (%s)", request.pk, request.reason)
    return request


def run_due_erasures(now=None) -> int:
    now = now or timezone.now()
    due = ErasureRequest.objects.filter(completed_at=None, cancelled_at=None, due_at__lte=now)
    done = 0
    for pk in due.values_list("pk", flat=True):
        run_erasure(pk)
        done += 1
    return done


# -- retention ---------------------------------------------------------------------------------
def purge_consent_records(now=None) -> int:
    """Remove the oldest consent records whose consent ended more than the retention period
    ago, as a prefix of the chain, and move the chain's verified start past them."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=get_setting("CONSENT_RECORD_RETENTION_DAYS"))
    with transaction.atomic():
        head = locked_head()
        candidates = ConsentRecord.objects.filter(seq__gte=head.first_seq).order_by("seq")
        last_purged = None
        for seq, expires_at, record_hash in candidates.values_list(
            "seq", "expires_at", "record_hash"
        ).iterator():
            if expires_at >= cutoff or seq == head.last_seq:
                break  # keep the newest record: it anchors the chain's end
            last_purged = (seq, record_hash)
        if last_purged is None:
            return 0
        removed = ConsentRecord.objects.filter(seq__lte=last_purged[0])._purge()
        head.first_seq = last_purged[0] + 1
        head.first_prev_hash = last_purged[1]
        head.checkpoint_mac = chain.checkpoint_mac(
            chain_key(), head.first_seq, head.first_prev_hash
        )
        head.save(update_fields=["first_seq", "first_prev_hash", "checkpoint_mac"])
        PurgeLog.objects.create(target="consent.records", cutoff=cutoff, removed=removed)
    return removed


def run_retention(now=None) -> dict[str, int]:
    """Purge everything past its retention: consent records here, the rest by handlers."""
    now = now or timezone.now()
    result = {"consent.records": purge_consent_records(now)}
    for name, handler in handlers.retention.items():
        for target, removed in handler(now).items():
            key = f"{name}.{target}"
            result[key] = removed
            PurgeLog.objects.create(target=key, cutoff=now, removed=removed)
    logger.info("Retention purge: %s", result)
    return result


# -- verification ------------------------------------------------------------------------------
def verify_log() -> tuple[int, list[chain.Problem]]:
    """Verify the whole consent log against its hash chain and head."""
    head = ChainHead.objects.get_or_create(pk=1)[0]
    problems: list[chain.Problem] = []
    if head.first_seq > 1 and not chain.same(
        head.checkpoint_mac, chain.checkpoint_mac(chain_key(), head.first_seq, head.first_prev_hash)
    ):
        problems.append(chain.Problem(None, "checkpoint", "the retention checkpoint was altered"))
    records = (record_fields(r) for r in ConsentRecord.objects.order_by("seq").iterator())
    checked, found = chain.verify(
        chain_key(),
        records,
        first_seq=head.first_seq,
        first_prev_hash=head.first_prev_hash or chain.GENESIS,
        head_seq=head.last_seq,
        head_hash=head.last_hash or chain.GENESIS,
    )
    return checked, problems + found
