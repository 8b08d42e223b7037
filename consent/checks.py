import re

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from tailored.checks import subclass_index

from .conf import get_setting
from .cookies import HOST_PREFIX
from .inventory import cookie_problem
from .policy import NECESSARY
from .rest.throttling import rate_problem, shared_cache_problem

MIDDLEWARE_PATH = "consent.middleware.ConsentMiddleware"
_PURPOSE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


@register()
def check_middleware(app_configs=None, **kwargs):
    if subclass_index(MIDDLEWARE_PATH, settings.MIDDLEWARE) == -1:
        return [
            Error(
                "ConsentMiddleware is not installed.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE.",
                id="consent.E001",
            )
        ]
    return []


@register()
def check_hash_key(app_configs=None, **kwargs):
    key = get_setting("CONSENT_HASH_KEY")
    if not key:
        if settings.DEBUG or get_setting("CONSENT_ALLOW_DERIVED_HASH_KEY"):
            return [
                Warning(
                    "CONSENT_HASH_KEY is not set; a key derived from SECRET_KEY is used.",
                    hint="Set CONSENT_HASH_KEY (at least 32 random characters) from the "
                    "environment before going to production.",
                    id="consent.W001",
                )
            ]
        return [
            Error(
                "CONSENT_HASH_KEY is not set.",
                hint="Identifiers are stored as keyed hashes: set CONSENT_HASH_KEY to a secret of "
                "at least 32 random characters, from the environment, never the database.",
                id="consent.E003",
            )
        ]
    if len(key) < 32:
        return [
            Warning(
                "CONSENT_HASH_KEY is shorter than 32 characters.",
                hint="Use at least 32 random characters, e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(48))'.",
                id="consent.W002",
            )
        ]
    return []


@register()
def check_purposes(app_configs=None, **kwargs):
    purposes = get_setting("CONSENT_PURPOSES")
    errors = []
    if NECESSARY not in purposes:
        errors.append(
            Error(
                "CONSENT_PURPOSES does not include 'necessary'.",
                hint="Keep 'necessary' in the list: it is always on and needs no consent.",
                id="consent.E004",
            )
        )
    bad = [p for p in purposes if not isinstance(p, str) or not _PURPOSE_RE.match(p)]
    if bad:
        errors.append(
            Error(
                f"Invalid purpose names in CONSENT_PURPOSES: {bad!r}.",
                hint="Use lowercase letters, digits and underscores, starting with a letter.",
                id="consent.E005",
            )
        )
    return errors


@register()
def check_rotation_and_modes(app_configs=None, **kwargs):
    errors = []
    if get_setting("CONSENT_PREVIOUS_HASH_KEYS") and not get_setting("CONSENT_CHAIN_KEY"):
        errors.append(
            Error(
                "CONSENT_PREVIOUS_HASH_KEYS is set but CONSENT_CHAIN_KEY is not.",
                hint="The consent log's chain key derives from CONSENT_HASH_KEY unless set: set "
                "CONSENT_CHAIN_KEY to the key the log was written with (see docs/privacy.md, "
                "'Rotating keys') or the log stops verifying.",
                id="consent.E006",
            )
        )
    if get_setting("CONSENT_BANNER_MODE") not in ("server", "client"):
        errors.append(
            Error(
                "CONSENT_BANNER_MODE must be 'server' or 'client'.",
                hint="Use 'client' when pages are served from a shared cache.",
                id="consent.E007",
            )
        )
    missing = set(get_setting("CONSENT_GPC_PURPOSES")) - set(get_setting("CONSENT_PURPOSES"))
    if missing:
        errors.append(
            Error(
                f"CONSENT_GPC_PURPOSES names unknown purposes: {sorted(missing)}.",
                hint="List only purposes from CONSENT_PURPOSES.",
                id="consent.E008",
            )
        )
    return errors


# The settings CONSENT_RATE replaced: requests per window, and the window in seconds.
_OLD_RATE_SETTINGS = ("CONSENT_RATE_LIMIT", "CONSENT_RATE_LIMIT_WINDOW")
_PERIODS = {1: "sec", 60: "min", 3600: "hour", 86400: "day"}


def _rate_from_old_settings() -> str | None:
    """CONSENT_RATE for the old settings' values, when DRF's syntax can say the same."""
    try:
        limit = int(getattr(settings, "CONSENT_RATE_LIMIT", 30))
        window = int(getattr(settings, "CONSENT_RATE_LIMIT_WINDOW", 60))
    except (TypeError, ValueError):
        return None
    if limit <= 0:
        return "None"  # the old way of switching the limit off
    return f'"{limit}/{_PERIODS[window]}"' if window in _PERIODS else None


@register()
def check_rate(app_configs=None, **kwargs):
    errors = []
    old = [name for name in _OLD_RATE_SETTINGS if hasattr(settings, name)]
    if old:
        same = _rate_from_old_settings()
        example = f"{same} says the same" if same else 'e.g. "30/min"'
        errors.append(
            Error(
                f"{' and '.join(old)} {'is' if len(old) == 1 else 'are'} no longer read.",
                hint=f"Set CONSENT_RATE instead ({example}): requests per period (sec, min, "
                "hour or day) in DRF's syntax, or None for no limit.",
                id="consent.E009",
            )
        )
    problem = rate_problem(get_setting("CONSENT_RATE"))
    if problem:
        errors.append(
            Error(
                f"CONSENT_RATE is not a rate: {problem}.",
                hint='Use DRF\'s "requests/period" syntax, e.g. "30/min", or None for no limit.',
                id="consent.E010",
            )
        )
    return errors


@register()
def check_cookie_security(app_configs=None, **kwargs):
    messages = []
    name = get_setting("CONSENT_COOKIE_NAME")
    secure = get_setting("CONSENT_COOKIE_SECURE")
    # The cookie is written after the decision is recorded: a value Django or the browser
    # refuses would fail every decision after its record.
    problem = cookie_problem(
        name, get_setting("CONSENT_COOKIE_PATH") or "/", get_setting("CONSENT_COOKIE_DOMAIN") or ""
    )
    if problem:
        messages.append(
            Error(
                f"The consent cookie cannot be written: {problem}.",
                hint="CONSENT_COOKIE_NAME must be a cookie name (RFC 6265 token: letters, "
                "digits and !#$%&'*+-.^_`|~), CONSENT_COOKIE_PATH start with '/' and "
                "CONSENT_COOKIE_DOMAIN be a host name.",
                id="consent.E011",
            )
        )
    samesite = get_setting("CONSENT_COOKIE_SAMESITE")
    if samesite is not None and str(samesite).lower() not in ("lax", "strict", "none"):
        messages.append(
            Error(
                f"CONSENT_COOKIE_SAMESITE is {samesite!r}.",
                hint="Use 'Lax' (the default), 'Strict', 'None' (only with a Secure cookie) "
                "or None (no attribute).",
                id="consent.E012",
            )
        )
    if name.startswith(HOST_PREFIX):
        ignored = [
            setting
            for setting, value, wanted in (
                ("CONSENT_COOKIE_SECURE", secure, (None, True)),
                ("CONSENT_COOKIE_PATH", get_setting("CONSENT_COOKIE_PATH"), ("/",)),
                ("CONSENT_COOKIE_DOMAIN", get_setting("CONSENT_COOKIE_DOMAIN"), (None, "")),
            )
            if value not in wanted
        ]
        if ignored:
            messages.append(
                Warning(
                    f"CONSENT_COOKIE_NAME starts with {HOST_PREFIX!r}: {', '.join(ignored)} "
                    f"{'is' if len(ignored) == 1 else 'are'} ignored.",
                    hint="Browsers accept a __Host- cookie only when it is Secure, with Path=/ "
                    "and without Domain, so it is always written like that. Remove the "
                    "setting, or use a name without the prefix.",
                    id="consent.W004",
                )
            )
    elif secure is not None and not secure and not settings.DEBUG:
        messages.append(
            Warning(
                "CONSENT_COOKIE_SECURE is False with DEBUG off: the consent cookie, which "
                "carries the visitor's identifier, is also sent over plain HTTP.",
                hint="Serve the site over HTTPS and remove CONSENT_COOKIE_SECURE (Secure unless "
                "DEBUG), or set it to True. A __Host- prefixed CONSENT_COOKIE_NAME also binds "
                "the cookie to this host.",
                id="consent.W003",
            )
        )
    return messages


# Django's transport security settings a production site serving consent cookies should set,
# and the value that is missing (Django's own deploy checks say the same, security.W004...).
_TRANSPORT_SETTINGS = (
    ("SECURE_HSTS_SECONDS", lambda value: bool(value)),
    ("SECURE_SSL_REDIRECT", lambda value: bool(value)),
    ("SESSION_COOKIE_SECURE", lambda value: bool(value)),
    ("CSRF_COOKIE_SECURE", lambda value: bool(value)),
)


@register(deploy=True)
def check_transport_security(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    missing = [
        name for name, is_set in _TRANSPORT_SETTINGS if not is_set(getattr(settings, name, None))
    ]
    if not missing:
        return []
    return [
        Warning(
            f"Not set for production: {', '.join(missing)}.",
            hint="The consent cookie and the privacy screens must only travel over HTTPS: set "
            "SECURE_HSTS_SECONDS (e.g. 31536000, after testing with a short value), "
            "SECURE_SSL_REDIRECT, SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE to True (behind "
            "a TLS-terminating proxy also SECURE_PROXY_SSL_HEADER). See docs/installation.md.",
            id="consent.W005",
        )
    ]


@register()
def check_erasure_journal(app_configs=None, **kwargs):
    alias = get_setting("CONSENT_ERASURE_JOURNAL_STORAGE")
    if alias not in getattr(settings, "STORAGES", {}):
        return [
            Error(
                f"CONSENT_ERASURE_JOURNAL_STORAGE names {alias!r}, which is not in STORAGES.",
                hint="Every erasure is written to the erasure journal, and fails while it "
                "cannot be: add the storage to STORAGES (a private, write-once one) or name "
                "an existing alias.",
                id="consent.E020",
            )
        ]
    return []


@register(Tags.caches, deploy=True)
def check_rate_cache(app_configs=None, **kwargs):
    if get_setting("CONSENT_RATE") is None:
        return []
    problem = shared_cache_problem()
    if problem:
        return [
            Warning(
                f"CONSENT_RATE is set but {problem}.",
                hint="Point CONSENT_RATE_LIMIT_CACHE at a cache every process shares (Django's "
                "RedisCache, see docs/installation.md), or set CONSENT_RATE = None.",
                id="consent.W006",
            )
        ]
    return []
