"""The consent cookie: a signed, timestamped reference to the visitor's decision.

It holds the visitor id (only once a purpose needing one is granted), the purposes chosen, the
notice version and whether the visitor opted in despite Global Privacy Control. A tampered,
forged, expired or malformed value reads as "undecided" and never raises. Whether the server
still honours the decision is checked against its own record.
"""

import time
from collections import OrderedDict

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
MAX_COOKIE_LENGTH = 512


# Verified cookies, by their exact signed value: a returning visitor's next requests skip the
# signature check and the keyed hash. Only a value that verified once is cached, so a forged
# one can never be served from here; age and notice version are checked on every request.
_verified: OrderedDict[str, tuple[ConsentState | None, float]] = OrderedDict()
_CACHE_SIZE = 10_000


def read(request: HttpRequest) -> ConsentState:
    raw = request.COOKIES.get(get_setting("CONSENT_COOKIE_NAME"))
    if not raw or len(raw) > MAX_COOKIE_LENGTH:
        return UNDECIDED
    hit = _verified.get(raw)
    if hit is None:
        hit = _verify(raw)
        if hit is None:
            return UNDECIDED
        _verified[raw] = hit
        if len(_verified) > _CACHE_SIZE:
            _verified.popitem(last=False)
    state, signed_at = hit
    if state is None or time.time() - signed_at > get_setting("CONSENT_MAX_AGE"):
        return UNDECIDED
    if state.notice_version != notices.current_version():
        return UNDECIDED  # decided under another notice: ask again
    return state


def _verify(raw: str) -> tuple[ConsentState | None, float] | None:
    signer = signing.TimestampSigner(salt=_SALT)
    try:
        payload = signer.unsign(raw, max_age=get_setting("CONSENT_MAX_AGE"))
    except signing.BadSignature:  # includes SignatureExpired
        return None
    signed_at = float(signing.b62_decode(raw.rsplit(signer.sep, 2)[-2]))
    parsed = decode_payload(payload, frozenset(get_setting("CONSENT_PURPOSES")))
    if parsed is None:
        return None, signed_at
    visitor_id, purposes, version, gpc_override = parsed
    state = ConsentState(
        decided=True,
        purposes=purposes,
        notice_version=version,
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
        gpc_override=gpc_override,
    )
    return state, signed_at


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    _verified.clear()


def write(response: HttpResponse, state: ConsentState) -> None:
    payload = encode_payload(
        state.visitor_id, state.purposes, state.notice_version or "", state.gpc_override
    )
    response.set_cookie(
        get_setting("CONSENT_COOKIE_NAME"),
        signing.TimestampSigner(salt=_SALT).sign(payload),
        max_age=get_setting("CONSENT_MAX_AGE"),
        secure=get_setting("CONSENT_COOKIE_SECURE"),
        httponly=True,
        samesite=get_setting("CONSENT_COOKIE_SAMESITE"),
        domain=get_setting("CONSENT_COOKIE_DOMAIN"),
        path=get_setting("CONSENT_COOKIE_PATH"),
    )


def delete(response: HttpResponse, cookies: list[tuple[str, str, str]]) -> None:
    """Expire the cookies of purposes the visitor no longer grants. Runs after the decision is
    recorded, so it never raises: an entry no response could carry is skipped."""
    own = get_setting("CONSENT_COOKIE_NAME")
    for name, path, domain in cookies:
        if name == own or cookie_problem(name, path or "/", domain or ""):
            continue
        response.delete_cookie(name, path=path or "/", domain=domain or None)


def privacy_signal(request: HttpRequest) -> bool:
    """Global Privacy Control (exactly ``Sec-GPC: 1``), or Do-Not-Track where configured."""
    meta = request.META  # not request.headers: building that mapping costs more than this
    if meta.get("HTTP_SEC_GPC", "").strip() == "1":
        return True
    return bool(get_setting("CONSENT_HONOR_DNT")) and meta.get("HTTP_DNT", "").strip() == "1"
