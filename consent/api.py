"""The consent app's public Python API: what the layers above may use."""

from django.http import HttpRequest

from .actions import (
    consented_keys,
    grant_imported,
    latest_grants,
    rebuild_grants,
    record_decision,
)
from .conf import get_setting
from .identity import external_key, user_key, visitor_key
from .policy import NECESSARY, UNDECIDED, ConsentState, InvalidChoice
from .registry import (
    register_erasure_handler,
    register_export_handler,
    register_rekey_handler,
    register_retention_handler,
)
from .rest.base import APIEndpoint
from .rest.errors import exception_handler
from .rest.parsers import MAX_BODY_BYTES, BeaconParser, JSONParser, RequestTooLarge
from .rest.throttling import ClientRateThrottle, rate_problem
from .signals import consent_changed

__all__ = [
    "MAX_BODY_BYTES",
    "UNDECIDED",
    "APIEndpoint",
    "BeaconParser",
    "ClientRateThrottle",
    "ConsentState",
    "InvalidChoice",
    "JSONParser",
    "RequestTooLarge",
    "consent_changed",
    "consent_mode_signals",
    "consented_keys",
    "exception_handler",
    "external_key",
    "get_consent",
    "grant_imported",
    "latest_grants",
    "notice_version",
    "purposes",
    "rate_problem",
    "rebuild_grants",
    "record_decision",
    "register_erasure_handler",
    "register_export_handler",
    "register_rekey_handler",
    "register_retention_handler",
    "user_key",
    "visitor_key",
]


def get_consent(request: HttpRequest) -> ConsentState:
    """The consent state the middleware verified for this request (undecided without it)."""
    return getattr(request, "consent", UNDECIDED)


def notice_version() -> str:
    """The version of the notice in force (consent under another one does not count)."""
    from . import notices

    return notices.current_version()


def purposes() -> list[str]:
    """The configured purposes, ``necessary`` included."""
    return list(get_setting("CONSENT_PURPOSES"))


def consent_mode_signals(state: ConsentState) -> dict[str, str]:
    """Google Consent Mode v2 signals ("granted"/"denied") for the visitor's state."""
    mapping = get_setting("CONSENT_GOOGLE_CONSENT_MODE")
    return {
        signal: "granted" if purpose == NECESSARY or purpose in state.purposes else "denied"
        for signal, purpose in mapping.items()
    }
