"""The enabled segments' compiled rules, cached per process (see :func:`enabled_segments`).

One stored segment whose rule the engine refuses (saved by an older version, written by a data
migration or through the ORM without validation, naming a condition type or feature that is no
longer installed) never stops the others: it is left out of evaluation and listed in
:attr:`Definitions.broken`, and its stored memberships are held as they are (see
``docs/rules.md``, "A rule that no longer compiles").
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections, router
from django.dispatch import receiver

from .conf import get_setting
from .extensions import extensions
from .models import Segment, persist_seconds
from .profiles.features import Profile
from .rules import Evaluator, RuleError, compile_rule, is_context_only, rule_references

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
    """An enabled segment, compiled. ``persist``: seconds members stay in after they last
    matched (0: they leave when the rule stops holding); ``sample``: the percentage of
    matching visitors who are in (None: all); ``static``: members were computed once and are
    fixed (the rule is not evaluated for anyone)."""

    slug: str
    priority: int
    evaluate: Evaluator
    context_only: bool
    persist: float = 0.0
    sample: int | None = None
    static: bool = False

    @property
    def decided_in_request(self) -> bool:
        """Decided from each request alone (for every visitor, storing nothing)."""
        return self.context_only and not self.static

    @property
    def stored(self) -> bool:
        """Whether its memberships are stored (and count on pages): behavioural and static
        segments, and persistent context-only ones (for consenting visitors)."""
        return not self.context_only or self.static or self.persist > 0


def in_sample(visitor_key: str | None, slug: str, percent: int | None) -> bool:
    """Whether a visitor is drawn into a segment that takes ``percent`` of the matching
    visitors: a fixed draw from their pseudonymous key (itself a keyed hash) and the
    segment's slug, so each visitor stays on the same side of every segment, independently
    from one segment to another. A visitor without a key (no consent) is never drawn in."""
    if percent is None or percent >= 100:
        return True
    if visitor_key is None or percent <= 0:
        return False
    digest = hashlib.blake2b(f"{slug}\x00{visitor_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) % 10_000 < percent * 100


class Definitions(list):
    """The enabled segments whose rules compile (:class:`CompiledSegment`, highest priority
    first), and ``broken``: ``{slug: the compile error}`` of the enabled segments whose stored
    rule the engine refuses. Those are evaluated for no one: the drain neither enters nor
    exits their members (:func:`segments.stream.drain.settle` holds the memberships stored
    for them until they end), and requests never decide them."""

    __slots__ = ("broken", "query_params", "stored")

    def __init__(self, segments=(), broken: dict[str, str] | None = None):
        super().__init__(segments)
        self.broken: dict[str, str] = broken or {}
        # Slugs whose stored memberships count: behavioural, static, persistent and broken
        # (held) segments.
        self.stored: frozenset[str] = frozenset()
        # The query parameters the rules name (recorded with page views: nothing else of the
        # query string is).
        self.query_params: frozenset[str] = frozenset()


# (pk, version) -> a compiled segment, or the compile error of a broken one (logged once each)
_compiled: dict[tuple[int, str], CompiledSegment | str] = {}
_definitions: tuple[float, Definitions, tuple] | None = None  # loaded, list, stamp


def _content(rule) -> str:
    """A stored rule as a stable string (the version of its segment), whatever it holds."""
    try:
        return json.dumps(rule, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # not JSON as stored: a version still
        return f"<unserialisable {type(rule).__name__}>"


def _compile(
    slug: str, priority: int, rule, tz: ZoneInfo, persist: float, sample, static: bool
) -> CompiledSegment | str:
    """The segment compiled, or the reason it cannot be (a message without personal data: a
    rule holds none)."""
    try:
        return CompiledSegment(
            slug,
            priority,
            compile_rule(rule, tz=tz),
            is_context_only(rule),
            persist,
            sample,
            static,
        )
    except RuleError as exc:
        problem = str(exc)
    logger.warning(
        "Segment %r is skipped: its stored rule does not compile (%s). Its members are kept "
        "as they are until the rule is corrected or the segment disabled.",
        slug,
        problem,
    )
    return problem


SEGMENTS = "segments"  # the segments' own part of the definitions stamps
_checked: tuple[float, dict[str, tuple]] | None = None  # (when, stamps): the shared check


def _table_stamp(model, quote) -> tuple[str, str]:
    """The two scalar subqueries that fingerprint one definitions table: its row count, and
    its latest ``updated_at`` (it moves on every save, enabling and disabling included), or
    its highest primary key where it has none."""
    names = {f.name: f for f in model._meta.concrete_fields}
    column = quote(names.get("updated_at", model._meta.pk).column)
    table = quote(model._meta.db_table)  # identifiers from the model, quoted: no input
    return f"(SELECT COUNT(*) FROM {table})", f"(SELECT MAX({column}) FROM {table})"  # noqa: S608


def _read_stamps() -> dict[str, tuple]:
    """Every definitions table's fingerprint (the segments', and those the siblings
    registered with :func:`segments.extensions.register_definitions`), in one query: it
    changes when a row is added, deleted or saved."""
    sources = {SEGMENTS: (Segment,), **extensions.definitions}
    connection = connections[router.db_for_read(Segment)]
    parts = [
        part
        for models in sources.values()
        for model in models
        for part in _table_stamp(model, connection.ops.quote_name)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        row = list(cursor.fetchone())
    stamps = {}
    for name, models in sources.items():
        size = 2 * len(models)
        stamps[name], row = tuple(row[:size]), row[size:]
    return stamps


def definitions_stamps(*, refresh: bool = False) -> dict[str, tuple]:
    """``{name: fingerprint}`` of the definitions tables (``"segments"``, and each name
    registered with :func:`segments.extensions.register_definitions`): the one freshness
    check every definitions cache of a process shares. The database is asked (one small
    query) at most every SEGMENTS_DEFINITIONS_CHECK_SECONDS (never when it is None, but for
    ``refresh``); in between, the last answer is returned with no query. A cache compares its
    part with the one it loaded with, and reads its definitions again when it moved; it takes
    a ``refresh``-ed stamp *before* reading them, so a change made meanwhile is seen at the
    next check."""
    global _checked
    checked = _checked
    now = time.monotonic()
    if checked is not None and not refresh:
        every = get_setting("SEGMENTS_DEFINITIONS_CHECK_SECONDS")
        if every is None or now - checked[0] < float(every):
            return checked[1]
    stamps = _read_stamps()
    _checked = (now, stamps)
    return stamps


def enabled_segments() -> Definitions:
    """The enabled segments with compiled rules, highest priority first. Compiled once per
    segment version. A process asks the database whether any segment changed (the shared
    check of :func:`definitions_stamps`: one small query) at most every
    SEGMENTS_DEFINITIONS_CHECK_SECONDS and reads the list again when one did, so an editor's
    save, enable or disable reaches every process within that time (the process that saved
    it, at once); the list is read again in any case every SEGMENTS_DEFINITIONS_CACHE_SECONDS,
    for writes that leave ``updated_at`` alone (a data migration's ``update()``).

    A segment whose rule does not compile is left out (logged once per version of the
    segment) and named in the result's ``broken``; the others are unaffected."""
    global _definitions
    cached = _definitions
    if cached is not None:
        loaded, result, stamp = cached
        fresh = time.monotonic() - loaded < float(get_setting("SEGMENTS_DEFINITIONS_CACHE_SECONDS"))
        if fresh and definitions_stamps()[SEGMENTS] == stamp:
            return result

    stamp = definitions_stamps(refresh=True)[SEGMENTS]  # before the rows (see there)
    tz = site_timezone()
    result = Definitions()
    rows = Segment.objects.filter(enabled=True).order_by("-priority", "slug")
    params: set[str] = set()
    fields = ("pk", "slug", "priority", "rule", "persist_for", "sample_percent", "static")
    for pk, slug, priority, rule, persist_for, sample, static in rows.values_list(*fields):
        # The version is the row's content, not updated_at: a data migration's update() or a
        # raw write changes the rule without touching the timestamp.
        options = f"{persist_for}:{sample}:{static}"
        key = (pk, f"{slug}:{priority}:{options}:{tz.key}:{_content(rule)}")
        compiled = _compiled.get(key)
        if compiled is None:
            persist = persist_seconds(persist_for)
            compiled = _compiled[key] = _compile(
                slug, priority, rule, tz, persist, sample, bool(static)
            )
        if isinstance(compiled, str):
            result.broken[slug] = compiled
        else:
            result.append(compiled)
            params.update(
                r["param"] for r in rule_references(rule) if r.get("kind") == "query_param"
            )
    result.stored = frozenset(s.slug for s in result if s.stored) | set(result.broken)
    result.query_params = frozenset(params)
    _definitions = (time.monotonic(), result, stamp)
    return result


def query_params() -> frozenset[str]:
    """The query parameters that enabled segments' rules name (from the definitions cache)."""
    return enabled_segments().query_params


def context_only_segments() -> list[CompiledSegment]:
    """The enabled segments decided from the request alone (cached with the others)."""
    global _context_only
    segments = enabled_segments()
    cached = _context_only
    if cached is None or cached[0] is not segments:  # the definitions were reloaded
        cached = _context_only = (segments, [s for s in segments if s.decided_in_request])
    return cached[1]


_context_only: tuple[list[CompiledSegment], list[CompiledSegment]] | None = None


def stored_segment_slugs() -> frozenset[str]:
    """Slugs of the enabled segments whose memberships are stored (behavioural ones, and
    those whose rule is broken, held as they were). A stored membership of any other slug (a
    deleted or disabled segment, until the drain removes it) must not choose content."""
    return enabled_segments().stored


def forget_definitions() -> None:
    """Drop this process's segment list and its last freshness check (the next call reads
    both again)."""
    global _definitions, _checked
    _definitions = _checked = None


_EMPTY = Profile()


def context_segments(
    context: dict[str, str],
    now: float | None = None,
    *,
    query=None,
    visitor_key: str | None = None,
) -> frozenset[str]:
    """Segments whose rules use only the request's context (device, campaign, time, query
    parameters...): decided from ``context`` alone, for any visitor, storing nothing.
    ``query`` is the request's query string as a mapping (``request.GET``: query conditions
    read any parameter of it); ``visitor_key`` the consenting visitor's key, for segments
    that take a random percentage of the matching visitors (without it, they never match)."""
    candidates = context_only_segments()
    if not candidates:
        return frozenset()
    now = time.time() if now is None else now
    if query is not None:
        context = {**context, "query": query}
    try:
        matched = [s for s in candidates if s.evaluate(_EMPTY, now, context).matched]
    except Exception:  # an evaluator broke its contract (never raise): decide the others
        matched = [s for s in candidates if _matches(s, now, context)]
    return frozenset(
        s.slug for s in matched if s.sample is None or in_sample(visitor_key, s.slug, s.sample)
    )


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
