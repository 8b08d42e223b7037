"""The consent app's public Python API: what the layers above may use."""

from . import notices
from .actions import consented_keys, grant_imported, rebuild_grants, record_decision
from .conf import get_setting
from .identity import external_key, external_keys, user_key, validate_visitor_key, visitor_key
from .log import latest_grants, latest_grants_many
from .policy import UNDECIDED, ConsentState, InvalidChoice
from .privacy import pending_erasure_purposes, record_erasure_outcome
from .registry import (
    RetentionPeriod,
    register_erasure_handler,
    register_export_handler,
    register_processing_activity,
    register_rekey_handler,
    register_retention_handler,
    register_standing_source,
)
from .rest.base import APIEndpoint
from .rest.errors import exception_handler
from .rest.parsers import MAX_BODY_BYTES, BeaconParser, JSONParser, RequestTooLarge
from .rest.schema import EndpointSchema, SchemaView
from .rest.throttling import (
    ClientRateThrottle,
    VisitorRateThrottle,
    client_address,
    rate_problem,
    shared_cache_problem,
)
from .signals import consent_changed, consents_recorded
from .visitor import (
    claimed_consent,
    consent_mode_signals,
    force_consent,
    get_consent,
    settle_consent,
)

__all__ = [
    "MAX_BODY_BYTES",
    "UNDECIDED",
    "APIEndpoint",
    "BeaconParser",
    "ClientRateThrottle",
    "ConsentState",
    "EndpointSchema",
    "InvalidChoice",
    "JSONParser",
    "RequestTooLarge",
    "RetentionPeriod",
    "SchemaView",
    "VisitorRateThrottle",
    "banner_mode",
    "claimed_consent",
    "client_address",
    "consent_changed",
    "consent_mode_signals",
    "consented_keys",
    "consents_recorded",
    "exception_handler",
    "external_key",
    "external_keys",
    "force_consent",
    "get_consent",
    "grant_imported",
    "latest_grants",
    "latest_grants_many",
    "notice_version",
    "pending_erasure_purposes",
    "purposes",
    "rate_problem",
    "rebuild_grants",
    "record_decision",
    "record_erasure_outcome",
    "register_erasure_handler",
    "register_export_handler",
    "register_processing_activity",
    "register_rekey_handler",
    "register_retention_handler",
    "register_standing_source",
    "settle_consent",
    "shared_cache_problem",
    "user_key",
    "validate_visitor_key",
    "visitor_key",
]


def notice_version() -> str:
    """The version of the notice in force (consent under another one does not count)."""
    return notices.current_version()


def banner_mode() -> str:
    """``"server"`` (the banner is rendered for each visitor) or ``"client"`` (every visitor
    gets the same markup and consent.js fetches their state, so pages can be shared from a
    cache): ``CONSENT_BANNER_MODE``."""
    return get_setting("CONSENT_BANNER_MODE")


def purposes() -> list[str]:
    """The configured purposes, ``necessary`` included."""
    return list(get_setting("CONSENT_PURPOSES"))
