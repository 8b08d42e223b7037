"""Every change to consent state, in one place, whether it comes from the banner, the
preferences page, the API, a browser signal, an erasure or a key rotation."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tailored import bulksql

from . import notices, standing
from .conf import get_setting
from .hashing import new_identifier
from .identity import previous_visitor_keys, visitor_key
from .inventory import cookies_outside
from .log import Grants, append_record, append_records, latest_grants
from .models import ConsentRecord, ConsentTally, ErasureRequest, IdentityLink
from .policy import NECESSARY, UNDECIDED, ConsentState, resolve_choice
from .registry import handlers

logger = logging.getLogger(__name__)

Method = ConsentRecord.Method

# The method recorded for an action, by the way the decision reached us: the site's own forms
# (the banner and the preferences page) or the JSON API (scripts, apps, consent.js clients).
_METHODS = {
    "form": {
        "accept_all": Method.BANNER_ACCEPT_ALL,
        "reject_all": Method.BANNER_REJECT_ALL,
        "custom": Method.BANNER_CUSTOM,
        "settings": Method.SETTINGS_PAGE,
        "api": Method.API,
        "withdraw": Method.WITHDRAW,
    },
    "api": {
        "accept_all": Method.API_ACCEPT_ALL,
        "reject_all": Method.API_REJECT_ALL,
        "custom": Method.API,
        "settings": Method.API,
        "api": Method.API,
        "withdraw": Method.API_WITHDRAW,
    },
}
VIA = tuple(_METHODS)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision produced: the visitor's new state, and cookies of purposes they no
    longer grant, which the response deletes."""

    state: ConsentState
    record: ConsentRecord | None = None
    delete_cookies: list[tuple[str, str, str]] = field(default_factory=list)


def tally(method: str) -> None:
    """Count a decision anonymously (for the officer's chart; no identifier involved)."""
    day = timezone.now().date()
    updated = ConsentTally.objects.filter(day=day, method=method).update(count=F("count") + 1)
    if not updated:
        obj, created = ConsentTally.objects.get_or_create(day=day, method=method)
        if not created:
            ConsentTally.objects.filter(pk=obj.pk).update(count=F("count") + 1)
        else:
            ConsentTally.objects.filter(pk=obj.pk).update(count=1)


def record_decision(
    current: ConsentState,
    action: str,
    requested: list[str],
    *,
    language: str = "",
    gpc: bool = False,
    via: str = "form",
) -> Decision:
    """Record a visitor's choice and return their new state.

    ``via`` says how the choice reached the site, ``"form"`` (the banner, the preferences page)
    or ``"api"`` (a JSON request): the record's method names both (``banner_accept_all``,
    ``api_accept_all``...).

    A visitor who grants nothing gets no identifier and nothing is stored about them (only an
    anonymous daily count). A visitor who had an identifier and withdraws gets a withdrawal
    record under their pseudonymous key, and erasure of what was collected under the withdrawn
    purposes is scheduled. Raises :class:`consent.policy.InvalidChoice` before writing anything.
    """
    purposes = list(get_setting("CONSENT_PURPOSES"))
    granted, denied = resolve_choice(action, requested, purposes)
    method = _METHODS[via][action]
    if current.visitor_key is not None and not standing.honoured(current, fresh=True):
        # An old copy of a cookie (its identifier withdrew or decided again since): nothing is
        # written under its identifier, and a grant gets a new one.
        current = UNDECIDED
    gpc_override = gpc and bool(granted & frozenset(get_setting("CONSENT_GPC_PURPOSES")))

    if granted:
        visitor_id = current.visitor_id or new_identifier()
        key = visitor_key(visitor_id)
    else:
        visitor_id, key = None, current.visitor_key

    # Read before anything is written: nothing after the write may fail (the inventory's bad
    # entries are skipped, not raised).
    delete_cookies = cookies_outside(granted)
    record = None
    with transaction.atomic():
        tally(method)
        if key is not None:
            before = latest_grants(key)
            previously = before[0] if before else frozenset()
            withdrawn = previously - granted
            record = append_record(
                key, granted=granted, denied=denied, method=method, language=language, gpc=gpc
            )
            if withdrawn:
                schedule_erasure(key, ErasureRequest.Reason.WITHDRAWAL, withdrawn)
            if granted:
                cancel_pending_erasures(key, granted)

    state = ConsentState(
        decided=True,
        purposes=granted,
        notice_version=str(notices.current().version),
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
        gpc_override=gpc_override,
        record_seq=record.seq if record is not None and visitor_id else None,
    )
    return Decision(state, record, delete_cookies)


def honour_gpc(current: ConsentState, effective: ConsentState, *, language: str = "") -> Decision:
    """Record that a Global Privacy Control signal turned off purposes the visitor had granted
    (once: the returned state, written to the cookie, already lacks them)."""
    granted = effective.purposes
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    withdrawn = current.purposes - granted
    delete_cookies = cookies_outside(granted)
    record = None
    with transaction.atomic():
        tally(Method.GPC)
        if current.visitor_key is not None:
            record = append_record(
                current.visitor_key,
                granted=granted,
                denied=optional - granted,
                method=Method.GPC,
                language=language,
                gpc=True,
            )
            schedule_erasure(current.visitor_key, ErasureRequest.Reason.WITHDRAWAL, withdrawn)
    keep_id = current.visitor_id if granted else None
    state = ConsentState(
        decided=True,
        purposes=granted,
        notice_version=current.notice_version,
        visitor_id=keep_id,
        visitor_key=current.visitor_key if keep_id else None,
        record_seq=record.seq if record is not None and keep_id else None,
    )
    return Decision(state, record, delete_cookies)


def schedule_erasure(
    key: str, reason: str, purposes: frozenset[str], *, delay=None
) -> ErasureRequest:
    """Queue the erasure of what is held about ``key`` (under ``purposes``; empty: all)."""
    if delay is None:
        delay = (
            get_setting("CONSENT_WITHDRAWAL_ERASURE_DELAY")
            if reason == ErasureRequest.Reason.WITHDRAWAL
            else 0
        )
    # The worker is told once this commits (consent.signal_handlers): queueing is not a
    # decision's business, and the beat sweep runs due erasures whatever happens to the task.
    return ErasureRequest.objects.create(
        visitor_key=key,
        reason=reason,
        purposes=sorted(purposes),
        due_at=timezone.now() + timedelta(seconds=delay),
    )


def consent_lapsed(key: str) -> ErasureRequest | None:
    """A visitor's consent expired, or was given under an earlier notice: their identifier is
    deleted from their browser (a new decision gets a new one), so nobody could reach what is
    held under it any more. It is erased, as after a withdrawal of every purpose (after
    ``CONSENT_WITHDRAWAL_ERASURE_DELAY``). Once per identifier; nothing to do for one whose
    latest record grants nothing (its withdrawal or erasure already took care of it)."""
    if not standing.lookup(key).granting:
        return None
    if ErasureRequest.objects.filter(visitor_key=key, reason=ErasureRequest.Reason.LAPSED).exists():
        return None
    return ErasureRequest.objects.create(
        visitor_key=key,
        reason=ErasureRequest.Reason.LAPSED,
        purposes=[],
        due_at=timezone.now() + timedelta(seconds=get_setting("CONSENT_WITHDRAWAL_ERASURE_DELAY")),
    )


def cancel_pending_erasures(key: str, granted: frozenset[str]) -> None:
    """Granting purposes again before a withdrawal's erasure ran cancels that erasure."""
    pending = ErasureRequest.objects.filter(
        visitor_key=key,
        reason=ErasureRequest.Reason.WITHDRAWAL,
        completed_at=None,
        cancelled_at=None,
    )
    cancel = [r.pk for r in pending if r.purposes and set(r.purposes) <= granted]
    if cancel:
        ErasureRequest.objects.filter(pk__in=cancel).update(cancelled_at=timezone.now())


def grant_imported(
    keys: list[str], granted: frozenset[str], *, language: str = "", source: str = ""
) -> int:
    """Record consent (method "api") for visitors brought in by an import whose lawful basis
    was established elsewhere (a CRM's own consent). Keys already granting are skipped. With
    ``source``, the method names it (``"api:<source>"``, at most 32 characters): consent a
    system sending events in asserted for its visitors, recorded with that system's name."""
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    current = {}
    for key, grants in (
        ConsentRecord.objects.filter(visitor_key__in=keys)
        .order_by("seq")
        .values_list("visitor_key", "granted")
    ):
        current[key] = frozenset(grants)
    todo = [key for key in keys if not granted <= current.get(key, frozenset())]
    method = f"{Method.API}:{source}"[:32] if source else Method.API
    append_records(
        todo, granted=granted, denied=optional - granted, method=method, language=language
    )
    return len(todo)


def consented_keys(keys: list[str], purpose: str) -> set[str]:
    """Of ``keys``, those whose latest decision grants ``purpose`` under the notice in force,
    has not expired, and who have no erasure pending or done: whose data may still be used (by
    model training, say). Withdrawn, expired, never recorded and erased visitors are left out."""
    if not keys:
        return set()
    now = timezone.now()
    version = str(notices.current().version)
    if bulksql.available():
        return _consented_keys_sql(keys, purpose, version, now)
    latest: dict[str, tuple[int, list, str, object]] = {}
    allowed: set[str] = set()
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        rows = ConsentRecord.objects.filter(visitor_key__in=chunk).values_list(
            "visitor_key", "seq", "granted", "notice_version", "expires_at"
        )
        for key, seq, granted, notice, expires in rows:
            if key not in latest or seq > latest[key][0]:
                latest[key] = (seq, granted, notice, expires)
        erased = set(
            ErasureRequest.objects.filter(
                visitor_key__in=chunk, cancelled_at__isnull=True
            ).values_list("visitor_key", flat=True)
        )
        for key in chunk:
            found = latest.get(key)
            if (
                found is not None
                and key not in erased
                and purpose in found[1]
                and found[2] == version
                and found[3] > now
            ):
                allowed.add(key)
    return allowed


def _consented_keys_sql(keys: list[str], purpose: str, version: str, now) -> set[str]:
    # The same test in one statement per 50,000 keys: each key's latest record (the index on
    # visitor_key, -seq), and no erasure request not cancelled.
    allowed: set[str] = set()
    records, erasures = ConsentRecord._meta.db_table, ErasureRequest._meta.db_table
    sql = (
        "SELECT k.key FROM unnest(%b::text[]) AS k(key) CROSS JOIN LATERAL ("  # noqa: S608
        f" SELECT r.granted, r.notice_version, r.expires_at FROM {records} r"
        " WHERE r.visitor_key = k.key ORDER BY r.seq DESC LIMIT 1) AS latest"
        " WHERE jsonb_exists(latest.granted, %s) AND latest.notice_version = %s"
        " AND latest.expires_at > %s AND NOT EXISTS ("
        f" SELECT 1 FROM {erasures} e WHERE e.visitor_key = k.key AND e.cancelled_at IS NULL)"
    )
    with bulksql.cursor() as cursor:
        for start in range(0, len(keys), 50_000):
            cursor.execute(sql, [list(keys[start : start + 50_000]), purpose, version, now])
            allowed.update(row[0] for row in cursor.fetchall())
    return allowed


def rebuild_grants(key: str, visitor_id: str | None) -> Grants | None:
    """Like :func:`latest_grants`, and if nothing is recorded under the current key but the
    visitor's raw identifier is known, look under earlier hashing keys and re-key their data."""
    found = latest_grants(key)
    if found is not None or visitor_id is None:
        return found
    for old_key in previous_visitor_keys(visitor_id):
        old = latest_grants(old_key)
        if old is None:
            continue
        rekey(old_key, key, old)
        return latest_grants(key)
    return None


def rekey(old_key: str, new_key: str, grants: Grants) -> None:
    granted, expiry = grants.granted, grants.expiry
    optional = frozenset(p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY)
    with transaction.atomic():
        append_record(
            new_key,
            granted=granted,
            denied=optional - granted,
            method=Method.KEY_ROTATION,
            expires_at=datetime.fromtimestamp(expiry, tz=UTC),
        )
        ErasureRequest.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
        IdentityLink.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
        for handler in handlers.rekey.values():
            handler(old_key, new_key)
