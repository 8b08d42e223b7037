"""The consent cookie: a signed, timestamped reference to the visitor's decision.

It holds the visitor id (only once a purpose needing one is granted), the purposes chosen, the
notice version, whether the visitor opted in despite Global Privacy Control, and the number of
the consent record it was written for. A tampered, forged, expired or malformed value reads as
"undecided" and never raises; an expired one, or one given under an earlier notice, is
*lapsed*: the middleware deletes it. Whether the server still honours a current one is checked
against its own record (:mod:`consent.standing`).
"""

import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from . import notices
from .conf import get_setting
from .identity import visitor_key
from .inventory import cookie_problem
from .policy import UNDECIDED, ConsentState, decode_payload, encode_payload

_SALT = "tailored.consent.cookie"
HOST_PREFIX = "__Host-"
MAX_COOKIE_LENGTH = 512


# Verified cookies, by their exact signed value: a returning visitor's next requests skip the
# signature check and the keyed hash. Only a value that verified once is cached, so a forged
# one can never be served from here; age and notice version are checked on every request.
_verified: OrderedDict[str, ConsentState] = OrderedDict()
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Reading:
    """What a request's consent cookie says: ``state``, the decision in force (undecided for
    no, a forged or a lapsed cookie), and ``lapsed``, the decision of a genuine cookie that no
    longer counts because it expired or was made under an earlier notice (``None`` otherwise):
    its identifier and the cookies of its purposes are to be deleted from the browser."""

    state: ConsentState
    lapsed: ConsentState | None = None


_NOTHING = Reading(UNDECIDED)


def read(request: HttpRequest) -> ConsentState:
    """The decision the request's consent cookie carries (undecided if none counts)."""
    return inspect(request).state


def inspect(request: HttpRequest) -> Reading:
    raw = request.COOKIES.get(cookie_name())
    if not raw or len(raw) > MAX_COOKIE_LENGTH:
        return _NOTHING
    state = _verified.get(raw)
    if state is None:
        state = _verify(raw)
        if state is None:
            return _NOTHING
        _verified[raw] = state
        if len(_verified) > _CACHE_SIZE:
            _verified.popitem(last=False)
    if not state.decided:
        return _NOTHING  # signed by us, but not a payload this version reads
    if (
        time.time() - state.signed_at > get_setting("CONSENT_MAX_AGE")
        or state.notice_version != notices.current_version()
    ):
        return Reading(UNDECIDED, state)  # expired, or decided under another notice: ask again
    return Reading(state)


def _verify(raw: str) -> ConsentState | None:
    """The state a cookie signed by us carries (undecided if its payload is malformed), or
    ``None`` for a forged one. Its age is checked by the caller (an expired cookie is lapsed,
    not forged: its identifier is deleted from the browser)."""
    signer = signing.TimestampSigner(salt=_SALT)
    try:
        payload = signer.unsign(raw)
        signed_at = float(signing.b62_decode(raw.rsplit(signer.sep, 2)[-2]))
    except (signing.BadSignature, ValueError):
        return None
    parsed = decode_payload(payload, frozenset(get_setting("CONSENT_PURPOSES")))
    if parsed is None:
        return UNDECIDED
    visitor_id, purposes, version, gpc_override, record_seq = parsed
    return ConsentState(
        decided=True,
        purposes=purposes,
        notice_version=version,
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
        gpc_override=gpc_override,
        record_seq=record_seq,
        signed_at=signed_at,
    )


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    _verified.clear()


def write(response: HttpResponse, state: ConsentState) -> None:
    payload = encode_payload(
        state.visitor_id,
        state.purposes,
        state.notice_version or "",
        state.gpc_override,
        state.record_seq if state.visitor_id else None,
    )
    response.set_cookie(
        cookie_name(),
        signing.TimestampSigner(salt=_SALT).sign(payload),
        max_age=get_setting("CONSENT_MAX_AGE"),
        httponly=True,
        samesite=get_setting("CONSENT_COOKIE_SAMESITE"),
        **_scope(),
    )


def forget(response: HttpResponse, others: list[tuple[str, str, str]]) -> None:
    """Delete the consent cookie (its identifier with it: the banner asks again) and
    ``others``, the cookies of purposes no longer granted."""
    scope = _scope()
    response.delete_cookie(
        cookie_name(),
        path=scope["path"],
        domain=scope["domain"],
        samesite=get_setting("CONSENT_COOKIE_SAMESITE"),
    )
    if scope["secure"]:  # delete_cookie sets Secure only for __Secure-/__Host- names
        response.cookies[cookie_name()]["secure"] = True
    delete(response, others)


def delete(response: HttpResponse, cookies: list[tuple[str, str, str]]) -> None:
    """Expire the cookies of purposes the visitor no longer grants. Runs after the decision is
    recorded, so it never raises: an entry no response could carry is skipped."""
    own = cookie_name()
    for name, path, domain in cookies:
        if name == own or cookie_problem(name, path or "/", domain or ""):
            continue
        response.delete_cookie(name, path=path or "/", domain=domain or None)


def cookie_name() -> str:
    return get_setting("CONSENT_COOKIE_NAME")


def secure() -> bool:
    """The cookie's ``Secure`` attribute: ``CONSENT_COOKIE_SECURE``, or when that is ``None``
    (the default) on unless ``DEBUG``; always on for a ``__Host-`` name."""
    if cookie_name().startswith(HOST_PREFIX):
        return True
    configured = get_setting("CONSENT_COOKIE_SECURE")
    return (not settings.DEBUG) if configured is None else bool(configured)


def _scope() -> dict:
    """Secure, Path and Domain of the consent cookie. A ``__Host-`` name is only accepted by
    browsers with ``Secure``, ``Path=/`` and no ``Domain``: it gets exactly those."""
    if cookie_name().startswith(HOST_PREFIX):
        return {"secure": True, "path": "/", "domain": None}
    return {
        "secure": secure(),
        "path": get_setting("CONSENT_COOKIE_PATH"),
        "domain": get_setting("CONSENT_COOKIE_DOMAIN"),
    }


def privacy_signal(request: HttpRequest) -> bool:
    """Global Privacy Control (exactly ``Sec-GPC: 1``), or Do-Not-Track where configured."""
    meta = request.META  # not request.headers: building that mapping costs more than this
    if meta.get("HTTP_SEC_GPC", "").strip() == "1":
        return True
    return bool(get_setting("CONSENT_HONOR_DNT")) and meta.get("HTTP_DNT", "").strip() == "1"
