"""The consent cookie: a signed, timestamped reference to the visitor's decision.

It holds the visitor id (only once a purpose needing one is granted), the purposes chosen and
the notice version. A tampered, forged, expired or malformed value reads as "undecided" and never
raises. Whether the server still honours the decision is checked against its own record.
"""

from django.core import signing
from django.http import HttpRequest, HttpResponse

from .conf import get_setting
from .identity import visitor_key
from .policy import UNDECIDED, ConsentState, decode_payload, encode_payload

_SALT = "tailored.consent.cookie"


def read(request: HttpRequest) -> ConsentState:
    raw = request.COOKIES.get(get_setting("CONSENT_COOKIE_NAME"))
    if not raw or len(raw) > 512:
        return UNDECIDED
    try:
        payload = signing.TimestampSigner(salt=_SALT).unsign(
            raw, max_age=get_setting("CONSENT_MAX_AGE")
        )
    except signing.BadSignature:  # includes SignatureExpired
        return UNDECIDED
    known = frozenset(get_setting("CONSENT_PURPOSES"))
    parsed = decode_payload(payload, known)
    if parsed is None:
        return UNDECIDED
    visitor_id, purposes, version = parsed
    if version != str(get_setting("CONSENT_NOTICE_VERSION")):
        return UNDECIDED  # decided under another notice: ask again
    return ConsentState(
        decided=True,
        purposes=purposes,
        notice_version=version,
        visitor_id=visitor_id,
        visitor_key=visitor_key(visitor_id) if visitor_id else None,
    )


def write(response: HttpResponse, state: ConsentState) -> None:
    payload = encode_payload(state.visitor_id, state.purposes, state.notice_version or "")
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
