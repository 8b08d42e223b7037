"""Rate limits of every endpoint of the suite: one throttle, one rate syntax, one keyed hash of
the client address.

The counters live in Django's cache (``CONSENT_RATE_LIMIT_CACHE``; Redis in production) under
``consent.identity.client_key(address)``, an HMAC under ``CONSENT_HASH_KEY``: the address itself
is never kept, and the same address is the same client for every endpoint.
"""

import re

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.utils.module_loading import import_string
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from ..conf import get_setting
from ..identity import client_key
from ..visitor import get_consent

# DRF's rate syntax, as SimpleRateThrottle.parse_rate reads it: requests "/" a period that DRF
# knows by its first letter (s, sec, m, min, h, hour, d, day).
_RATE_RE = re.compile(r"([0-9]+)/([smhd])[a-z]*")


def rate_problem(rate: object) -> str | None:
    """Why ``rate`` is not a rate the throttle can use, or ``None`` if it is one.

    A rate is DRF's ``"requests/period"`` string (``"30/min"``, ``"120/minute"``, ``"1000/day"``)
    or ``None`` for no limit. Used by the system checks of every app with a rate setting.
    """
    if rate is None:
        return None
    if not isinstance(rate, str) or not _RATE_RE.fullmatch(rate):
        return f"{rate!r} is not of the form 'requests/period' (period: sec, min, hour or day)"
    if int(rate.split("/", 1)[0]) == 0:
        return f"{rate!r} would refuse every request (None switches the limit off)"
    return None


def shared_cache_problem() -> str | None:
    """Why the rate limits' counters (the cache ``CONSENT_RATE_LIMIT_CACHE``) would not be
    shared by the site's processes, or ``None``.

    Django's default cache, ``LocMemCache``, lives in each process: with two web processes a
    client gets twice the rate, with eight eight times. ``DummyCache`` keeps nothing, so nothing
    is ever limited. Never a problem with ``DEBUG`` on (a development server is one process).
    Used by the system checks of every app with a rate setting.
    """
    if settings.DEBUG:
        return None
    alias = get_setting("CONSENT_RATE_LIMIT_CACHE")
    config = settings.CACHES.get(alias)
    if config is None:
        return f"CONSENT_RATE_LIMIT_CACHE names {alias!r}, which is not in CACHES"
    try:
        backend = import_string(config["BACKEND"])
    except (ImportError, KeyError):
        return None  # Django's own checks report a cache that cannot be loaded
    if isinstance(backend, type) and issubclass(backend, LocMemCache | DummyCache):
        return (
            f"the cache {alias!r} ({backend.__name__}) is not shared by the site's processes: "
            "each process counts on its own"
            + (" (DummyCache counts nothing)" if issubclass(backend, DummyCache) else "")
        )
    return None


def client_address(request) -> str:
    """The address of the client that sent ``request`` (a Django or DRF request).

    ``REMOTE_ADDR``, unless DRF's ``NUM_PROXIES`` is set: then the address is taken from
    ``X-Forwarded-For`` that many proxies back, as DRF's throttles take it. Without
    ``NUM_PROXIES`` the header is never trusted (a client could send any value in it).
    """
    if api_settings.NUM_PROXIES is None:
        return request.META.get("REMOTE_ADDR", "")
    return BaseThrottle().get_ident(request) or ""


class ClientRateThrottle(SimpleRateThrottle):
    """Requests per client address, counted per endpoint: DRF's ``SimpleRateThrottle`` with the
    view's ``throttle_scope`` (a name, one per endpoint) and ``get_throttle_rate()`` (a
    ``"requests/period"`` string read from a setting at request time, or ``None`` for no limit),
    as DRF's ``ScopedRateThrottle`` takes its scope from the view.

    A refused request is answered 429 with ``Retry-After``. When the cache cannot be reached the
    request is allowed: a rate limit must never take the site down with the cache.
    """

    def __init__(self) -> None:
        # The rate is the view's, so it is only known in allow_request (DRF reads it here).
        self.rate = None

    @property
    def cache(self) -> BaseCache:
        return caches[get_setting("CONSENT_RATE_LIMIT_CACHE")]

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None)
        self.rate = view.get_throttle_rate() if self.scope else None
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache is down: fail open (see the class docstring)
            return True

    def get_ident(self, request) -> str:
        return client_address(request)

    def get_cache_key(self, request, view) -> str:
        scope = getattr(view, "throttle_scope", None) or self.scope
        return self.cache_format % {"scope": scope, "ident": client_key(self.get_ident(request))}


class VisitorRateThrottle(ClientRateThrottle):
    """Requests per visitor, besides :class:`ClientRateThrottle`'s per address: the counter's
    key is the visitor's keyed hash (``request.consent.visitor_key``), so one visitor cannot
    send more by changing address, and visitors behind one address (an office, a mobile
    carrier) each have their own count. A request without a visitor key is left to the
    per-address limit.

    The view gives the rate with ``get_visitor_throttle_rate()`` (``None``: no limit); the
    bucket is the view's ``throttle_scope`` with ``-visitor``.
    """

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, "throttle_scope", None)
        get_rate = getattr(view, "get_visitor_throttle_rate", None)
        self.scope = f"{scope}-visitor" if scope else None
        self.rate = get_rate() if scope and get_rate else None
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return SimpleRateThrottle.allow_request(self, request, view)
        except Exception:  # the cache is down: fail open, as the per-address throttle does
            return True

    def get_cache_key(self, request, view) -> str | None:
        key = get_consent(request).visitor_key
        if not key:
            return None  # no visitor: the per-address limit alone
        return self.cache_format % {"scope": self.scope, "ident": key}
