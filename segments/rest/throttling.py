"""Rate limit of the event endpoint, per client, keyed by a keyed hash of the address."""

import hashlib
import hmac

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ..conf import get_setting


class EventRateThrottle(SimpleRateThrottle):
    """``SEGMENTS_EVENT_RATE`` requests (default 120/min; ``None`` disables the limit) per
    client address. The cache key holds an HMAC-SHA256 of the address under ``SECRET_KEY``,
    never the address itself.

    The address is ``REMOTE_ADDR`` unless DRF's ``NUM_PROXIES`` is set, in which case the
    client's address is taken from ``X-Forwarded-For`` as DRF does (a client-supplied header
    is never trusted otherwise).
    """

    scope = "segments_events"

    def get_rate(self) -> str | None:
        return get_setting("SEGMENTS_EVENT_RATE")

    def get_cache_key(self, request, view) -> str:
        if api_settings.NUM_PROXIES is not None:
            address = self.get_ident(request) or ""
        else:
            address = request.META.get("REMOTE_ADDR", "")
        secret = settings.SECRET_KEY
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        message = f"tailored.segments.events:{address}".encode()
        digest = hmac.new(key, message, hashlib.sha256).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}
