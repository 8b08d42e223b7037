"""Recording a consent decision: one place, whether it comes from the banner, a form or the API."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .conf import get_setting
from .hashing import new_identifier
from .identity import visitor_key
from .models import ConsentRecord
from .policy import ConsentState, resolve_choice
from .signals import consent_changed

_METHODS = {
    "accept_all": ConsentRecord.Method.BANNER_ACCEPT_ALL,
    "reject_all": ConsentRecord.Method.BANNER_REJECT_ALL,
    "custom": ConsentRecord.Method.CUSTOM,
    "withdraw": ConsentRecord.Method.WITHDRAW,
}


def record_decision(
    current: ConsentState, action: str, requested: list[str], *, language: str = ""
) -> ConsentState:
    """Record a decision and return the state the visitor's cookie should now carry.

    A visitor who grants nothing gets no identifier and nothing is stored about them. A visitor
    who had an identifier and now withdraws gets a withdrawal record under their pseudonymous id
    (the proof that they withdrew) and loses the identifier. Raises
    :class:`consent.policy.InvalidChoice` before writing anything if the request is invalid.
    """
    purposes = list(get_setting("CONSENT_PURPOSES"))
    granted, denied = resolve_choice(action, requested, purposes)
    version = str(get_setting("CONSENT_NOTICE_VERSION"))

    if granted:
        visitor_id = current.visitor_id or new_identifier()
        key = visitor_key(visitor_id)
    else:
        visitor_id, key = None, current.visitor_key

    if key is not None:  # someone we know (or now get to know): keep the proof
        now = timezone.now()
        expires_at = now + timedelta(seconds=get_setting("CONSENT_MAX_AGE"))
        method = _METHODS[action] if granted or action != "reject_all" else _METHODS["withdraw"]
        with transaction.atomic():
            ConsentRecord.objects.create(
                visitor_key=key,
                expires_at=expires_at,
                granted=sorted(granted),
                denied=sorted(denied),
                notice_version=version,
                method=method,
                language=language[:16],
            )
            transaction.on_commit(
                lambda: consent_changed.send(
                    sender=ConsentRecord,
                    visitor_key=key,
                    granted=granted,
                    denied=denied,
                    notice_version=version,
                    expires_at=expires_at,
                )
            )

    return ConsentState(
        decided=True,
        purposes=granted,
        notice_version=version,
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
    )


def latest_grants(key: str) -> tuple[frozenset[str], str, float] | None:
    """The server's own record of ``key``'s current decision: (granted, notice version, expiry).

    ``None`` when nothing is recorded. Used to rebuild the fast store's copy of consent state.
    """
    record = ConsentRecord.objects.filter(visitor_key=key).order_by("-created_at", "-pk").first()
    if record is None:
        return None
    return frozenset(record.granted), record.notice_version, record.expires_at.timestamp()
