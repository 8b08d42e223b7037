"""The enabled segments' compiled rules, cached per process (see :func:`enabled_segments`).

One stored segment whose rule the engine refuses (saved by an older version, written by a data
migration or through the ORM without validation, naming a condition type or feature that is no
longer installed) never stops the others: it is left out of evaluation and listed in
:attr:`Definitions.broken`, and its stored memberships are held as they are (see
``docs/rules.md``, "A rule that no longer compiles").
"""

import json
import logging
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import get_setting
from .models import Segment
from .profiles.features import Profile
from .rules import Evaluator, RuleError, compile_rule, is_context_only

logger = logging.getLogger(__name__)


@receiver(setting_changed)
def _forget_on_setting_change(**kwargs) -> None:
    forget_definitions()


_bad_zones: set[str] = set()  # warned about once per process


def site_timezone() -> ZoneInfo:
    """The time zone of time-of-day and weekday conditions: ``SEGMENTS_TIME_ZONE``, else
    ``TIME_ZONE``. A name that is not a known zone (segments.E007) falls back to UTC with a
    warning, rather than stopping every segment."""
    name = get_setting("SEGMENTS_TIME_ZONE") or settings.TIME_ZONE or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        if repr(name) not in _bad_zones:
            _bad_zones.add(repr(name))
            logger.warning("Unknown time zone %r for segment rules; UTC is used", name)
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    slug: str
    priority: int
    evaluate: Evaluator
    context_only: bool


class Definitions(list):
    """The enabled segments whose rules compile (:class:`CompiledSegment`, highest priority
    first), and ``broken``: ``{slug: the compile error}`` of the enabled segments whose stored
    rule the engine refuses. Those are evaluated for no one: the drain neither enters nor
    exits their members (:func:`segments.stream.drain.settle` holds the memberships stored
    for them until they end), and requests never decide them."""

    __slots__ = ("broken", "stored")

    def __init__(self, segments=(), broken: dict[str, str] | None = None):
        super().__init__(segments)
        self.broken: dict[str, str] = broken or {}
        # Slugs whose stored memberships count: behavioural and broken (held) segments.
        self.stored: frozenset[str] = frozenset()


# (pk, version) -> a compiled segment, or the compile error of a broken one (logged once each)
_compiled: dict[tuple[int, str], CompiledSegment | str] = {}
_definitions: tuple[float, Definitions] | None = None


def _content(rule) -> str:
    """A stored rule as a stable string (the version of its segment), whatever it holds."""
    try:
        return json.dumps(rule, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # not JSON as stored: a version still
        return f"<unserialisable {type(rule).__name__}>"


def _compile(slug: str, priority: int, rule, tz: ZoneInfo) -> CompiledSegment | str:
    """The segment compiled, or the reason it cannot be (a message without personal data: a
    rule holds none)."""
    try:
        return CompiledSegment(slug, priority, compile_rule(rule, tz=tz), is_context_only(rule))
    except RuleError as exc:
        problem = str(exc)
    logger.warning(
        "Segment %r is skipped: its stored rule does not compile (%s). Its members are kept "
        "as they are until the rule is corrected or the segment disabled.",
        slug,
        problem,
    )
    return problem


def enabled_segments() -> Definitions:
    """The enabled segments with compiled rules, highest priority first. Compiled once per
    segment version; the list is re-read from the database at most every
    SEGMENTS_DEFINITIONS_CACHE_SECONDS, so an edit reaches every process within that time.

    A segment whose rule does not compile is left out (logged once per version of the
    segment) and named in the result's ``broken``; the others are unaffected."""
    global _definitions
    cached = _definitions
    ttl = float(get_setting("SEGMENTS_DEFINITIONS_CACHE_SECONDS"))
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]

    tz = site_timezone()
    result = Definitions()
    rows = Segment.objects.filter(enabled=True).order_by("-priority", "slug")
    for pk, slug, priority, rule in rows.values_list("pk", "slug", "priority", "rule"):
        # The version is the row's content, not updated_at: a data migration's update() or a
        # raw write changes the rule without touching the timestamp.
        key = (pk, f"{slug}:{priority}:{tz.key}:{_content(rule)}")
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = _compile(slug, priority, rule, tz)
        if isinstance(compiled, str):
            result.broken[slug] = compiled
        else:
            result.append(compiled)
    result.stored = frozenset(s.slug for s in result if not s.context_only) | set(result.broken)
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


def stored_segment_slugs() -> frozenset[str]:
    """Slugs of the enabled segments whose memberships are stored (behavioural ones, and
    those whose rule is broken, held as they were). A stored membership of any other slug (a
    deleted or disabled segment, until the drain removes it) must not choose content."""
    return enabled_segments().stored


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
    try:
        return frozenset(s.slug for s in candidates if s.evaluate(_EMPTY, now, context).matched)
    except Exception:  # an evaluator broke its contract (never raise): decide the others
        return frozenset(s.slug for s in candidates if _matches(s, now, context))


_failed: set[str] = set()  # context-only segments whose evaluator raised (warned once each)


def _matches(segment: CompiledSegment, now: float, context: dict[str, str]) -> bool:
    try:
        return segment.evaluate(_EMPTY, now, context).matched
    except Exception as exc:
        if segment.slug not in _failed:
            _failed.add(segment.slug)
            logger.warning(
                "Segment %r could not be decided from a request (%s); it is left out",
                segment.slug,
                type(exc).__name__,
            )
        return False
