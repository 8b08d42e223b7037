"""The consent cookie: a signed, timestamped reference to the visitor's decision.

It holds the visitor id (only once a purpose needing one is granted), the purposes chosen, the
notice version and whether the visitor opted in despite Global Privacy Control. A tampered,
forged, expired or malformed value reads as "undecided" and never raises. Whether the server
still honours the decision is checked against its own record.
"""

from django.core import signing
from django.http import HttpRequest, HttpResponse

from . import notices
from .conf import get_setting
from .identity import visitor_key
from .policy import UNDECIDED, ConsentState, decode_payload, encode_payload

_SALT = "tailored.consent.cookie"
MAX_COOKIE_LENGTH = 512


def read(request: HttpRequest) -> ConsentState:
    raw = request.COOKIES.get(get_setting("CONSENT_COOKIE_NAME"))
    if not raw or len(raw) > MAX_COOKIE_LENGTH:
        return UNDECIDED
    try:
        payload = signing.TimestampSigner(salt=_SALT).unsign(
            raw, max_age=get_setting("CONSENT_MAX_AGE")
        )
    except signing.BadSignature:  # includes SignatureExpired
        return UNDECIDED
    parsed = decode_payload(payload, frozenset(get_setting("CONSENT_PURPOSES")))
    if parsed is None:
        return UNDECIDED
    visitor_id, purposes, version, gpc_override = parsed
    if version != str(notices.current().version):
        return UNDECIDED  # decided under another notice: ask again
    return ConsentState(
        decided=True,
        purposes=purposes,
        notice_version=version,
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
        gpc_override=gpc_override,
    )


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
    """Expire the cookies of purposes the visitor no longer grants."""
    own = get_setting("CONSENT_COOKIE_NAME")
    for name, path, domain in cookies:
        if name != own:
            response.delete_cookie(name, path=path or "/", domain=domain or None)


def privacy_signal(request: HttpRequest) -> bool:
    """Global Privacy Control (exactly ``Sec-GPC: 1``), or Do-Not-Track where configured."""
    if request.headers.get("Sec-GPC", "").strip() == "1":
        return True
    return bool(get_setting("CONSENT_HONOR_DNT")) and request.headers.get("DNT", "").strip() == "1"
