"""The fast store and event stream: one interface (:mod:`.base`), a Redis backend for
production and an embedded one for zero-setup sites, chosen by dotted path in
``SEGMENTS_BACKEND`` and created lazily, once per process, by :func:`get_backend`."""

import threading

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..breaker import BreakerPolicy, CircuitBreaker
from ..conf import get_setting
from .base import BaseBackend

_lock = threading.Lock()
_backend: tuple[str, BaseBackend] | None = None

# The request path's view of the fast store's health, shared by every thread of the process:
# the page path (segments.recording) and consent mirror writes (segments.consent_mirror).
request_breaker = CircuitBreaker()


_policy: BreakerPolicy | None = None
_POLICY_SETTINGS = ("SEGMENTS_FAILURE_BACKOFF", "SEGMENTS_SLOW_CALL_SECONDS", "SEGMENTS_SLOW_CALLS")


def breaker_policy() -> BreakerPolicy:
    """The breaker's settings (read on every request: remembered until one changes)."""
    global _policy
    if _policy is None:
        _policy = BreakerPolicy(
            open_seconds=float(get_setting("SEGMENTS_FAILURE_BACKOFF")),
            slow_call_seconds=float(get_setting("SEGMENTS_SLOW_CALL_SECONDS")),
            slow_calls=int(get_setting("SEGMENTS_SLOW_CALLS")),
        )
    return _policy


def get_backend() -> BaseBackend:
    """The configured backend, created on first use and shared by the whole process."""
    global _backend
    current = _backend
    if current is not None:  # forgotten when the setting changes (below)
        return current[1]
    with _lock:
        config = get_setting("SEGMENTS_BACKEND")
        fingerprint = repr(config)
        if _backend is None or _backend[0] != fingerprint:
            cls = import_string(config["BACKEND"])
            _backend = (fingerprint, cls(dict(config.get("OPTIONS") or {})))
        return _backend[1]


@receiver(setting_changed)
def _reset(setting: str, **kwargs) -> None:
    global _backend, _policy
    if setting in _POLICY_SETTINGS:
        _policy = None
    if setting == "SEGMENTS_BACKEND":
        _backend = None
        request_breaker.reset()  # another store: nothing is known about its health
