"""Lazy resolution of the configured backend and of the enabled segments' compiled rules."""

import threading
from dataclasses import dataclass

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .backends.base import BaseBackend
from .conf import get_setting
from .rules import Evaluator, compile_rule

_lock = threading.Lock()
_backend: tuple[str, BaseBackend] | None = None


def get_backend() -> BaseBackend:
    """The configured backend, created on first use and shared by the whole process."""
    global _backend
    config = get_setting("SEGMENTS_BACKEND")
    fingerprint = repr(config)
    current = _backend
    if current is not None and current[0] == fingerprint:
        return current[1]
    with _lock:
        if _backend is None or _backend[0] != fingerprint:
            cls = import_string(config["BACKEND"])
            _backend = (fingerprint, cls(dict(config.get("OPTIONS") or {})))
        return _backend[1]


@receiver(setting_changed)
def _reset_backend(setting: str, **kwargs) -> None:
    global _backend
    if setting == "SEGMENTS_BACKEND":
        _backend = None


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    slug: str
    priority: int
    evaluate: Evaluator


_compiled: dict[tuple[int, str], CompiledSegment] = {}


def enabled_segments() -> list[CompiledSegment]:
    """The enabled segments with compiled rules (compiled once per segment version)."""
    from .models import Segment

    result = []
    for pk, slug, priority, rule, updated in Segment.objects.filter(enabled=True).values_list(
        "pk", "slug", "priority", "rule", "updated_at"
    ):
        key = (pk, f"{slug}:{priority}:{updated.isoformat()}")
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = CompiledSegment(slug, priority, compile_rule(rule))
        result.append(compiled)
    return result
