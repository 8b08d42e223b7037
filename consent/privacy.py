"""Data-subject requests (access, portability, erasure), retention and log verification."""

import csv
import dataclasses
import io
import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from tailored.spreadsheet import safe_cell as csv_safe_cell

from . import chain, journal
from .actions import schedule_erasure
from .conf import get_setting
from .hashing import is_identifier, keyed_hash
from .identity import chain_key, hash_key, previous_hash_keys
from .log import append_record, latest_grants, locked_head, record_fields
from .models import ChainHead, ConsentRecord, ErasureRequest, IdentityLink, PurgeLog
from .policy import NECESSARY
from .registry import handlers

logger = logging.getLogger(__name__)

# What an export shows of each consent record: the chained fields (the key is the export's
# subject) and the record's hash, by which it can be verified.
_CONSENT_FIELDS = (*(f for f in chain.FIELDS if f != "visitor_key"), "record_hash")


# -- who the request is about -------------------------------------------------------------------
class UnknownSubject(ValueError):
    """The identifier given for a request names nobody (a malformed id, an unknown account)."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """The pseudonymous keys a request covers, found from the identifier it gives.

    ``keys`` come first under the current hashing key, then under earlier ones (data of a
    visitor who has not returned since a key rotation stays under the old key); ``primary``
    are the keys an erasure always covers (a tombstone drops later events), the others only
    when they hold something."""

    keys: tuple[str, ...]
    primary: frozenset[str] = dataclasses.field(default_factory=frozenset)


def _hashes(value: str, domain: str) -> list[str]:
    return [keyed_hash(value, k, domain=domain) for k in (hash_key(), *previous_hash_keys())]


def find_subject(
    *,
    key: str | None = None,
    raw_id: str | None = None,
    source: str | None = None,
    external_id: str | None = None,
    user_id: str | None = None,
    username: str | None = None,
) -> Subject:
    """The keys of the data subject named by exactly one kind of identifier:

    - ``key``: the pseudonymous key shown on the visitor's preferences page;
    - ``raw_id``: the identifier in the visitor's consent cookie;
    - ``source`` and ``external_id``: a customer of another system (a CRM) whose events an
      import brought in, hashed exactly as the importer does (``identity.external_key``);
    - ``user_id`` or ``username``: a site account linked to visitor profiles at login.

    Raises :class:`UnknownSubject` for a malformed identifier or an unknown account, with a
    message fit for the privacy officer (it never repeats the identifier)."""
    key, raw_id, external_id, user_id, username = (
        str(value).strip() if value is not None else ""
        for value in (key, raw_id, external_id, user_id, username)
    )
    if sum(1 for value in (key, raw_id, external_id, user_id, username) if value) != 1:
        raise UnknownSubject("Give exactly one identifier.")
    if key:
        key = key.lower()
        if not is_identifier(key):
            raise UnknownSubject("A pseudonymous id is 32 hexadecimal characters.")
        return Subject((key,), frozenset({key}))
    if raw_id:
        raw_id = raw_id.lower()
        if not is_identifier(raw_id):
            raise UnknownSubject("A cookie identifier is 32 hexadecimal characters.")
        keys = _hashes(raw_id, "visitor")
        return Subject(tuple(keys), frozenset(keys[:1]))
    if external_id:
        if not source or not source.strip():
            raise UnknownSubject("An external id needs the import source it comes from.")
        # As identity.external_key hashes it for an import (source as given, id stripped).
        keys = _hashes(f"{source}:{external_id}", "external")
        return Subject(tuple(keys), frozenset(keys[:1]))
    if username:
        User = get_user_model()
        found = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if found is None:
            raise UnknownSubject("There is no account with this username.")
        user_id = found.pk
    user_keys = _hashes(str(user_id), "user")
    linked = list(
        dict.fromkeys(
            IdentityLink.objects.filter(user_key__in=user_keys)
            .order_by("created_at", "pk")
            .values_list("visitor_key", flat=True)
        )
    )
    return Subject(tuple(linked), frozenset(linked))


def _holds_anything(data: dict[str, list[dict]]) -> bool:
    return any(rows for table, rows in data.items() if table != "visitor_key")


def export_subject(subject: Subject) -> dict[str, list[dict]]:
    """:func:`export_visitor` for every key of ``subject`` that holds something (and its
    primary keys): with several keys, each row says which key it was found under."""
    exports = {k: export_visitor(k) for k in subject.keys}
    kept = [k for k in subject.keys if k in subject.primary or _holds_anything(exports[k])]
    if len(kept) == 1:
        return exports[kept[0]]
    data: dict[str, list[dict]] = {"visitor_key": [{"visitor_key": k} for k in kept]}
    for k in kept:
        for table, rows in exports[k].items():
            if table != "visitor_key":
                data.setdefault(table, []).extend({"visitor_key": k, **row} for row in rows)
    return data


def erase_subject(subject: Subject, reason: str = "request") -> list["ErasureRequest"]:
    """:func:`erase_visitor` for the primary keys of ``subject`` and every other key of it
    that holds something."""
    return [
        erase_visitor(k, reason)
        for k in subject.keys
        if k in subject.primary or _holds_anything(export_visitor(k))
    ]


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


def run_erasure(pk: int, *, journal_it: bool = True) -> ErasureRequest:
    """Carry out one erasure request (idempotent; skipped if cancelled or done).

    Its completion is written to the erasure journal (outside the database) before it is
    committed: if the journal cannot be written the request stays pending and is retried, so
    no completed erasure is missing from the journal. (``journal_it=False``: a replay of a
    journalled erasure, already there.)"""
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
        if journal_it:
            journal.append(
                request.visitor_key,
                request.purposes,
                request.reason,
                request.requested_at,
                request.completed_at,
            )
    logger.info("Erasure %s completed (%s)", request.pk, request.reason)
    return request


def record_erasure_outcome(key: str, name: str, outcome: object) -> bool:
    """Add what a handler learnt after the erasure ran (a destination confirming its delete
    call, say) to the latest completed erasure of ``key``: its ``result[name]``, shown with the
    erasure to the privacy officer. False when ``key`` has no completed erasure."""
    with transaction.atomic():
        request = (
            ErasureRequest.objects.select_for_update()
            .filter(visitor_key=key, completed_at__isnull=False)
            .order_by("-completed_at")
            .first()
        )
        if request is None:
            return False
        request.result = {**request.result, name: outcome}
        request.save(update_fields=["result"])
    return True


def run_due_erasures(now=None) -> int:
    now = now or timezone.now()
    due = ErasureRequest.objects.filter(completed_at=None, cancelled_at=None, due_at__lte=now)
    done = 0
    for pk in due.values_list("pk", flat=True):
        run_erasure(pk)
        done += 1
    return done


def pending_erasure_purposes(keys: list[str]) -> dict[str, frozenset[str]]:
    """Of ``keys``, those with an erasure requested but not yet carried out (a withdrawal's,
    waiting for its delay), each with the purposes it covers (every optional purpose for a
    full erasure): their data must not be brought back, by a rebuild say, meanwhile."""
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    pending: dict[str, frozenset[str]] = {}
    for start in range(0, len(keys), 5000):
        rows = ErasureRequest.objects.filter(
            visitor_key__in=keys[start : start + 5000], completed_at=None, cancelled_at=None
        ).values_list("visitor_key", "purposes")
        for key, purposes in rows:
            pending[key] = pending.get(key, frozenset()) | (frozenset(purposes) or optional)
    return pending


# -- after restoring a backup ------------------------------------------------------------------
@dataclasses.dataclass
class ReplayResult:
    """What a replay of the erasure journal did."""

    entries: int = 0
    replayed: int = 0
    already_applied: int = 0
    failed: int = 0  # could not be applied now (a service down): run the replay again
    invalid: list[journal.Invalid] = dataclasses.field(default_factory=list)


def replay_erasures(since=None) -> ReplayResult:
    """Apply again every journalled erasure (completed at or after ``since``) that the
    database does not know as done: after a restore from a backup taken before it. Each is
    recorded again in the consent log (so events arriving later are dropped) and carried out
    by every handler, PostgreSQL and the fast store alike. Idempotent: running it twice
    replays nothing the second time. Entries whose MAC does not match are refused."""
    entries, invalid = journal.read(since)
    result = ReplayResult(entries=len(entries), invalid=invalid)
    for entry in entries:
        try:
            if _already_applied(entry):
                result.already_applied += 1
                continue
            _reapply(entry)
        except Exception as exc:  # one entry's failure (all of it rolled back) stops no other
            logger.warning("Erasure journal entry %s not applied: %s", entry.id, type(exc).__name__)
            result.failed += 1
            continue
        result.replayed += 1
    for problem in invalid:
        logger.warning("Erasure journal file refused: %s", problem.problem)
    logger.info(
        "Erasure journal replay: %d entries, %d replayed, %d already applied, %d failed, "
        "%d refused",
        result.entries,
        result.replayed,
        result.already_applied,
        result.failed,
        len(invalid),
    )
    return result


def _already_applied(entry: journal.Entry) -> bool:
    wanted = set(entry.purposes)
    done = ErasureRequest.objects.filter(
        visitor_key=entry.visitor_key, completed_at__gte=entry.completed_at
    ).values_list("purposes", flat=True)
    return any(not purposes or (wanted and wanted <= set(purposes)) for purposes in done)


def _reapply(entry: journal.Entry) -> None:
    key, purposes = entry.visitor_key, frozenset(entry.purposes)
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    # One transaction: the request's own task (queued on commit) finds it done.
    with transaction.atomic():
        current = latest_grants(key)
        granted = current[0] if current else frozenset()
        keep = granted - purposes if purposes else frozenset()
        if current is None or keep != granted:
            append_record(
                key,
                granted=keep,
                denied=optional - keep,
                method=ConsentRecord.Method.WITHDRAW if purposes else ConsentRecord.Method.ERASURE,
            )
        if not purposes:
            IdentityLink.objects.filter(visitor_key=key).delete()
        request = schedule_erasure(key, entry.reason, purposes, delay=0)
        run_erasure(request.pk, journal_it=False)


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


def purge_unanchored(now=None) -> dict[str, int]:
    """Account links and finished erasure records go with a visitor's last consent record:
    kept as long as the proof they belong to, never longer."""
    now = now or timezone.now()
    anchored = Exists(ConsentRecord.objects.filter(visitor_key=OuterRef("visitor_key")))
    result = {}
    with transaction.atomic():
        result["consent.identity_links"] = IdentityLink.objects.filter(~anchored).delete()[0]
        result["consent.erasures"] = (
            ErasureRequest.objects.filter(~anchored)
            .exclude(completed_at=None, cancelled_at=None)  # a pending erasure still runs
            .delete()[0]
        )
        for target, removed in result.items():
            if removed:
                PurgeLog.objects.create(target=target, cutoff=now, removed=removed)
    return result


def run_retention(now=None) -> dict[str, int]:
    """Purge everything past its retention: consent records here, the rest by handlers."""
    now = now or timezone.now()
    result = {"consent.records": purge_consent_records(now), **purge_unanchored(now)}
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
