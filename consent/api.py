"""The consent app's public Python API: what the layers above may use."""

from django.http import HttpRequest

from .actions import latest_grants, record_decision
from .conf import get_setting
from .identity import user_key, visitor_key
from .policy import UNDECIDED, ConsentState, InvalidChoice
from .signals import consent_changed

__all__ = [
    "UNDECIDED",
    "ConsentState",
    "InvalidChoice",
    "consent_changed",
    "get_consent",
    "latest_grants",
    "notice_version",
    "purposes",
    "record_decision",
    "user_key",
    "visitor_key",
]


def get_consent(request: HttpRequest) -> ConsentState:
    """The consent state the middleware verified for this request (undecided without it)."""
    return getattr(request, "consent", UNDECIDED)


def notice_version() -> str:
    return str(get_setting("CONSENT_NOTICE_VERSION"))


def purposes() -> list[str]:
    """The configured purposes, ``necessary`` included."""
    return list(get_setting("CONSENT_PURPOSES"))
