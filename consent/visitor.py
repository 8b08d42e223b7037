"""A request's consent state, as the middleware verified it, and what it signals to tags."""

from django.http import HttpRequest

from .conf import get_setting
from .policy import NECESSARY, UNDECIDED, ConsentState


def get_consent(request: HttpRequest) -> ConsentState:
    """The consent state the middleware verified for this request (undecided without it)."""
    return getattr(request, "consent", UNDECIDED)


def consent_mode_signals(state: ConsentState) -> dict[str, str]:
    """Google Consent Mode v2 signals ("granted"/"denied") for the visitor's state."""
    mapping = get_setting("CONSENT_GOOGLE_CONSENT_MODE")
    return {
        signal: "granted" if purpose == NECESSARY or purpose in state.purposes else "denied"
        for signal, purpose in mapping.items()
    }
