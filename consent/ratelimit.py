"""A fixed-window rate limit for the consent endpoints, in Django's cache (Redis in
production), keyed by a keyed hash of the client address: the address itself is never kept."""

import time

from django.core.cache import caches
from django.http import HttpRequest

from .conf import get_setting
from .identity import client_key

_now = time.time  # the clock (tests hold it still)


def allow(request: HttpRequest, scope: str) -> bool:
    limit = int(get_setting("CONSENT_RATE_LIMIT"))
    if limit <= 0:
        return True
    window = int(get_setting("CONSENT_RATE_LIMIT_WINDOW"))
    address = request.META.get("REMOTE_ADDR", "")
    bucket = int(_now() // window)
    key = f"consent-rl:{scope}:{client_key(address)}:{bucket}"
    cache = caches[get_setting("CONSENT_RATE_LIMIT_CACHE")]
    try:
        if cache.add(key, 1, timeout=window + 1):
            return True
        return cache.incr(key) <= limit
    except Exception:
        return True
