"""A request's consent state, as the middleware verified it, and what it signals to tags.

The middleware reads the cookie (signature, expiry, notice) at once, but whether the server
still honours it (:mod:`consent.standing`: not an old copy) is settled on first use, so that it
can ride on a round trip the request makes anyway: the first :func:`get_consent` asks the
registered standing sources (an app that mirrors the consent record in a store the request
reads anyway answers from there), then, if none can tell, consent's own cache. Code that
reads the store itself may take the claim unverified (:func:`claimed_consent`) and settle it
with the store's answer (:func:`settle_consent`).
"""

import logging

from django.http import HttpRequest

from . import standing
from .conf import get_setting
from .policy import NECESSARY, UNDECIDED, ConsentState
from .registry import handlers

logger = logging.getLogger(__name__)

_CLAIM = "_tailored_consent_claim"  # request attribute: a cookie's state not yet verified


def get_consent(request: HttpRequest) -> ConsentState:
    """The consent state the middleware verified for this request (undecided without it)."""
    if _CLAIM in request.__dict__:
        _verify(request)
    return getattr(request, "consent", UNDECIDED)


def claim_consent(request: HttpRequest, state: ConsentState, claimed: ConsentState) -> None:
    """Set ``request.consent`` to ``state``, read from a cookie that claims ``claimed`` and is
    not verified against the server's record yet (the middleware)."""
    request.consent = state
    if claimed.visitor_key is not None:
        request.__dict__[_CLAIM] = claimed
    else:
        request.__dict__.pop(_CLAIM, None)


def force_consent(request: HttpRequest, state: ConsentState) -> None:
    """Set the request's consent state to one its caller vouches for (a preview, a test
    override): no cookie's claim is verified for it."""
    request.consent = state
    request.__dict__.pop(_CLAIM, None)


def claimed_consent(request: HttpRequest) -> tuple[ConsentState, ConsentState | None]:
    """The request's consent state and, if it is not verified yet, the cookie's claim to check
    (settle it with :func:`settle_consent`)."""
    return getattr(request, "consent", UNDECIDED), request.__dict__.get(_CLAIM)


def settle_consent(request: HttpRequest, honoured: bool | None) -> None:
    """Settle the request's unverified claim with a store's answer (``None``: no answer; the
    claim stays to be verified on first use)."""
    if honoured is None or _CLAIM not in request.__dict__:
        return
    del request.__dict__[_CLAIM]
    if not honoured:
        request.consent = UNDECIDED


def is_settled(request: HttpRequest) -> bool:
    return _CLAIM not in request.__dict__


def _verify(request: HttpRequest) -> None:
    claimed = request.__dict__.pop(_CLAIM)  # first: a source reading consent sees the claim
    honoured = None
    for name, source in handlers.standing.items():
        try:
            honoured = source(request, claimed)
        except Exception as exc:  # the page must not fail for it: consent's cache answers
            logger.warning("Standing source %s failed: %s", name, type(exc).__name__)
            honoured = None
        if honoured is not None:
            break
    if honoured is None:
        honoured = standing.honoured(claimed)
    if not honoured:
        request.consent = UNDECIDED


def consent_mode_signals(state: ConsentState) -> dict[str, str]:
    """Google Consent Mode v2 signals ("granted"/"denied") for the visitor's state."""
    mapping = get_setting("CONSENT_GOOGLE_CONSENT_MODE")
    return {
        signal: "granted" if purpose == NECESSARY or purpose in state.purposes else "denied"
        for signal, purpose in mapping.items()
    }
