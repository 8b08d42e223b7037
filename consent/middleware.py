import logging
from collections.abc import Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

from . import cookies
from .actions import consent_lapsed, honour_gpc
from .conf import get_setting
from .inventory import cookies_outside, stray_cookies
from .policy import ConsentState, apply_privacy_signals
from .visitor import claim_consent, get_consent, is_settled

logger = logging.getLogger(__name__)


class ConsentMiddleware:
    """Verify the consent cookie once per request and keep the result on ``request.consent``.

    The server's record wins over the cookie: an old copy of a cookie (the visitor decided
    again since, or withdrew) counts as no consent (:mod:`consent.standing`), checked on first
    use of the state (:mod:`consent.visitor`: on a consented page view, in the round trip that
    records it; a request that never reads it pays nothing for it). A cookie that
    expired or was given under an earlier notice no longer counts either: the response deletes
    it, with its identifier, and the cookies of the purposes it granted, as a withdrawal does,
    and the data held under the lapsed identifier (which the visitor can no longer reach) is
    scheduled for erasure.

    Cookies the inventory declares under a purpose the visitor does not grant (now) are deleted
    whenever a request carries them: a browser keeps them after the consent cookie expired.

    A Global Privacy Control signal narrows the visitor's purposes for the request; the first
    time it takes away purposes they had granted, that is recorded and the cookie updated.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reading = cookies.inspect(request)
        claimed, stale = reading.state, reading.lapsed
        effective = claimed
        if claimed.purposes and cookies.privacy_signal(request):
            effective = apply_privacy_signals(
                claimed, gpc=True, gpc_purposes=frozenset(get_setting("CONSENT_GPC_PURPOSES"))
            )
        claim_consent(request, effective, claimed)
        forget = stale is not None and _lapse(stale)
        response = self.get_response(request)
        if getattr(request, "consent_decided", False):
            return response  # the view wrote the new decision's cookies
        if forget:
            cookies.forget(response, cookies_outside(frozenset()))
            return response
        if effective is not claimed and get_consent(request) is effective:
            decision = honour_gpc(claimed, effective, language=get_language() or "")
            cookies.write(response, decision.state)
            cookies.delete(response, decision.delete_cookies)
            return response
        # An old copy of the cookie counts as no consent: its purposes' cookies go (the cookie
        # itself is left alone: the browser may be receiving the newer one from a concurrent
        # request). Checked here only if the request carries such cookies and nothing settled
        # the claim yet.
        if is_settled(request):
            strays = stray_cookies(request.COOKIES, get_consent(request).purposes)
        else:
            strays = stray_cookies(request.COOKIES, effective.purposes)
            if strays != stray_cookies(request.COOKIES, frozenset()):
                strays = stray_cookies(request.COOKIES, get_consent(request).purposes)
        cookies.delete(response, strays)
        return response


def _lapse(state: ConsentState) -> bool:
    """Whether the browser should forget a lapsed cookie: yes once what its identifier holds
    is scheduled for erasure (or it holds nothing). If that cannot be written now, the cookie
    stays, so a later request tries again rather than strand the data."""
    if state.visitor_key is None:
        return bool(state.purposes)
    try:
        consent_lapsed(state.visitor_key)
    except DatabaseError as exc:
        logger.warning("Lapsed consent not handled: %s", type(exc).__name__)
        return False
    return True
