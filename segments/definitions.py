"""The enabled segments' compiled rules, cached per process (see :func:`enabled_segments`)."""

import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import get_setting
from .models import Segment
from .profiles.features import Profile
from .rules import Evaluator, compile_rule, is_context_only


@receiver(setting_changed)
def _forget_on_setting_change(**kwargs) -> None:
    forget_definitions()


def site_timezone() -> ZoneInfo:
    return ZoneInfo(get_setting("SEGMENTS_TIME_ZONE") or settings.TIME_ZONE or "UTC")


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    slug: str
    priority: int
    evaluate: Evaluator
    context_only: bool


_compiled: dict[tuple[int, str], CompiledSegment] = {}
_definitions: tuple[float, list[CompiledSegment]] | None = None


def enabled_segments() -> list[CompiledSegment]:
    """The enabled segments with compiled rules, highest priority first. Compiled once per
    segment version; the list is re-read from the database at most every
    SEGMENTS_DEFINITIONS_CACHE_SECONDS, so an edit reaches every process within that time."""
    global _definitions
    cached = _definitions
    ttl = float(get_setting("SEGMENTS_DEFINITIONS_CACHE_SECONDS"))
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]

    tz = site_timezone()
    result = []
    rows = Segment.objects.filter(enabled=True).order_by("-priority", "slug")
    for pk, slug, priority, rule, updated in rows.values_list(
        "pk", "slug", "priority", "rule", "updated_at"
    ):
        key = (pk, f"{slug}:{priority}:{updated.isoformat()}:{tz.key}")
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = CompiledSegment(
                slug, priority, compile_rule(rule, tz=tz), is_context_only(rule)
            )
        result.append(compiled)
    _definitions = (time.monotonic(), result)
    return result


def context_only_segments() -> list[CompiledSegment]:
    """The enabled segments decided from the request alone (cached with the others)."""
    global _context_only
    segments = enabled_segments()
    cached = _context_only
    if cached is None or cached[0] is not segments:  # the definitions were reloaded
        cached = _context_only = (segments, [s for s in segments if s.context_only])
    return cached[1]


_context_only: tuple[list[CompiledSegment], list[CompiledSegment]] | None = None


def forget_definitions() -> None:
    global _definitions
    _definitions = None


_EMPTY = Profile()


def context_segments(context: dict[str, str], now: float | None = None) -> frozenset[str]:
    """Segments whose rules use only the request's context (device, campaign, time...):
    decided from ``context`` alone, for any visitor, storing nothing."""
    candidates = context_only_segments()
    if not candidates:
        return frozenset()
    now = time.time() if now is None else now
    return frozenset(s.slug for s in candidates if s.evaluate(_EMPTY, now, context).matched)
