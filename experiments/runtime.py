"""The running experiments as the request path and the drain see them, and the arm function
they share (no numpy, no query per request).

Each process keeps the running experiments in memory (:func:`running`), read again when the
segments' shared definitions freshness check sees them change (or at once after
:func:`forget`), with their
:class:`~experiments.assignment.Allocation` built once per load: a request hashes the visitor
only for an experiment they have no sticky arm in.

The arm of a visitor in an experiment (:meth:`RunningExperiment.arm`), in this order:

1. the sticky assignment the drain stored in the visitor's hash (``x:<id>`` ->
   ``"<assignment version>:<arm>"``, read by the request's one round trip), if its version is
   the experiment's current ``assignment_version`` (bumping it re-randomises everyone);
2. the experiment's own holdout: ``hash("holdout:" + key, visitor, 2) < holdout_percent / 100``
   gives :data:`HOLDOUT_ARM` (-1: default content, counted as the holdout), for a visitor
   inside the experiment's namespace (outside it: ``None``);
3. GrowthBook's allocation with seed ``"<key>:<assignment version>"``, the arms' current
   weights, coverage, hash version and namespace; outside coverage or namespace: ``None``
   (not enrolled: the usual content, nothing recorded).

The global holdout is an experiment of kind ``global_holdout`` (arms: the holdout, then
personalised); while one runs, consented visitors with
``hash("tailored:global-holdout", visitor, 2) < EXPERIMENTS_GLOBAL_HOLDOUT`` are its arm 0 and
see default content in every personalised block and page.

Which experiment decides (:func:`decider`, :meth:`Running.served`): the experiments that may
decide a block or a page's variants form a chain, tried in order; the first the visitor is
eligible for and enrolled in decides, and a visitor is counted only in the experiments that
decided something they saw. The request path, the cache-safe key and the drain all use it.
What a page can show (its personalised blocks, its page variants and theirs: :class:`PagePoints`)
is read by the drain once per definitions load, so it knows which page variant a page view served
(the request path's own choice, from the same segments and arms) and which blocks were on it.
"""

import itertools
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .assignment import NOT_ENROLLED, Allocation, in_namespace
from .conf import get_setting

HOLDOUT_ARM = -1
GLOBAL_HOLDOUT_SEED = "tailored:global-holdout"
KIND_BLOCK = "block"
KIND_PAGE = "page"
KIND_HOLDOUT = "holdout"
KIND_GLOBAL_HOLDOUT = "global_holdout"
MODE_BANDIT = "bandit"
DEFAULT_ARM_KEY = "default"


@dataclass(slots=True, eq=False)
class RunningExperiment:
    """One running experiment, precomputed for assignment."""

    pk: int
    id: str  # str(pk): the x:<id> field and Exchange.assignments key
    key: str
    kind: str
    page_id: int | None
    block_id: str
    segment: str | None  # the segment's slug the experiment runs inside (None: everyone)
    version: int
    arm_keys: tuple[str, ...]
    weights: tuple[float, ...]
    holdout: float  # share (0..1) kept in the experiment's own holdout
    allocation: Allocation
    _holdout: Allocation | None = None
    _sticky_prefix: str = ""
    # A bandit's own split for the visitors of some segments (Thompson sampling per segment),
    # highest priority first: (slug, allocation, normalised weights).
    by_segment: tuple[tuple[str, Allocation, tuple[float, ...]], ...] = ()

    def __post_init__(self):
        self._sticky_prefix = f"{self.version}:"

    def eligible(self, segments) -> bool:
        """Whether a visitor in ``segments`` (slugs) takes part."""
        return self.segment is None or self.segment in segments

    def sticky_value(self, arm: int) -> str:
        return f"{self.version}:{arm}"

    def sticky_arm(self, sticky: str | None) -> int | None:
        """The arm a stored sticky value gives, if it is of the current version."""
        if sticky is not None and sticky.startswith(self._sticky_prefix):
            try:
                arm = int(sticky[len(self._sticky_prefix) :])
            except ValueError:
                return None
            if arm == HOLDOUT_ARM or 0 <= arm < len(self.arm_keys):
                return arm
        return None

    def _split(self, segments) -> tuple[Allocation, tuple[float, ...]]:
        """The allocation a new visitor in ``segments`` is hashed with: their highest-priority
        segment's own (a bandit learning per segment), else everyone's."""
        if segments:
            for slug, allocation, weights in self.by_segment:
                if slug in segments:
                    return allocation, weights
        return self.allocation, self.weights

    def fresh_arm(self, visitor_key: str, segments=()) -> int | None:
        """The arm by hashing alone (no sticky value): the holdout, an arm, or None. A visitor
        outside the experiment's namespace is not enrolled at all, not even in its holdout:
        the namespace's other experiments are theirs."""
        if self._holdout is not None and self._holdout.bucket(visitor_key) < self.holdout:
            namespace = self.allocation.namespace
            if namespace is not None and not in_namespace(visitor_key, namespace):
                return None
            return HOLDOUT_ARM
        allocation = self._split(segments)[0] if self.by_segment else self.allocation
        arm = allocation.assign(visitor_key)
        return None if arm == NOT_ENROLLED else arm

    def arm(self, visitor_key: str, sticky: str | None = None, segments=()) -> int | None:
        """The visitor's arm: sticky if of the current version, else by hashing (module doc)
        with the split of their segments (``segments``: their slugs) where a bandit has one."""
        if sticky is not None:
            arm = self.sticky_arm(sticky)
            if arm is not None:
                return arm
        return self.fresh_arm(visitor_key, segments)

    def probability(self, arm: int, segments=()) -> float:
        """The probability of ``arm`` for a visitor in ``segments`` hashed now (for offline
        evaluation)."""
        enrolled = 1 - self.holdout
        if arm == HOLDOUT_ARM:
            return self.holdout
        allocation, weights = self._split(segments)
        total = sum(weights) or 1.0
        return enrolled * allocation.coverage * weights[arm] / total

    def split(self, segments=()) -> dict[int, float]:
        """The share of each arm (:data:`HOLDOUT_ARM` included while the experiment keeps a
        holdout) among the visitors a hashing now enrols, for a visitor in ``segments``: what
        the sample-ratio check expects of the visitors enrolled under this split."""
        allocation, weights = self._split(segments)
        total = sum(weights)
        coverage = min(max(float(allocation.coverage), 0.0), 1.0)
        shares = {
            arm: (1 - self.holdout) * coverage * weight / total
            for arm, weight in enumerate(weights)
            if total > 0
        }
        if self.holdout > 0:
            shares[HOLDOUT_ARM] = self.holdout
        enrolled = sum(shares.values())
        return {arm: share / enrolled for arm, share in shares.items()} if enrolled > 0 else {}

    def arm_name(self, arm: int) -> str:
        return "holdout" if arm == HOLDOUT_ARM else self.arm_keys[arm]


def split_key(split: Mapping[int, float]) -> str:
    """A split as the drain stores it with each enrolment (``"-1:0.1,0:0.45,1:0.45"``): the
    sample-ratio check's weight period (:func:`parse_split`)."""
    return ",".join(f"{arm}:{share:.9g}" for arm, share in sorted(split.items()))


def parse_split(key: str) -> dict[int, float]:
    """The split a :func:`split_key` names ({} for an unreadable one)."""
    try:
        return {int(a): float(s) for a, s in (part.split(":") for part in key.split(",") if part)}
    except ValueError:
        return {}


class _GlobalHoldout(RunningExperiment):
    """The global holdout: arm 0 (the holdout) below EXPERIMENTS_GLOBAL_HOLDOUT, else 1."""

    def fresh_arm(self, visitor_key: str, segments=()) -> int | None:
        share = float(get_setting("EXPERIMENTS_GLOBAL_HOLDOUT"))
        return 0 if self.allocation.bucket(visitor_key) < share else 1

    def probability(self, arm: int, segments=()) -> float:
        share = float(get_setting("EXPERIMENTS_GLOBAL_HOLDOUT"))
        return share if arm == 0 else 1 - share

    def split(self, segments=()) -> dict[int, float]:
        """The configured split (EXPERIMENTS_GLOBAL_HOLDOUT against the rest), whatever the
        arms' weights say: the hashing never reads them."""
        share = min(max(float(get_setting("EXPERIMENTS_GLOBAL_HOLDOUT")), 0.0), 1.0)
        return {0: share, 1: 1 - share}


@dataclass(frozen=True, slots=True)
class PagePoints:
    """What a page of a running experiment can show, read at each definitions load
    (:func:`load`): its own personalised blocks (StreamField ids) and its servable page
    variants in the order the request path tries them (cms_blocks' ``live_variants``), each
    ``(key, segments, match all, its personalised blocks)``; a variant's key is its page id as
    a string, as a page experiment's arms name it."""

    blocks: frozenset[str]
    variants: tuple[tuple[str, frozenset[str], bool, frozenset[str]], ...] = ()

    @property
    def anywhere(self) -> frozenset[str]:
        """The personalised blocks of the page or of any of its variants."""
        return self.blocks.union(*(v[3] for v in self.variants))

    def by_segments(self, segments) -> int | None:
        """The index of the variant a visitor in ``segments`` is served when no experiment
        decides (personalization.decisions.choose: the first they match), or None."""
        if not segments:
            return None
        for index, (_key, wanted, match_all, _blocks) in enumerate(self.variants):
            if wanted and (wanted <= segments if match_all else not wanted.isdisjoint(segments)):
                return index
        return None

    def shown(self, decided: "tuple[RunningExperiment, int] | None", segments) -> frozenset[str]:
        """The personalised blocks of the page a visitor in ``segments`` is served at this
        page's URL, given the experiment and arm that decided its variants (None: none did),
        as personalization's ``decide`` turns them into a page: a holdout or a ``"default"``
        arm shows this page, an arm naming a servable variant that variant, any other arm
        (``"personalised"``) or no experiment the choice by segments."""
        index = self.by_segments(segments)
        if decided is not None:
            experiment, arm = decided
            shows = DEFAULT_ARM_KEY if arm == HOLDOUT_ARM else experiment.arm_keys[arm]
            if shows == DEFAULT_ARM_KEY:
                index = None
            else:
                keys = [v[0] for v in self.variants]
                if shows in keys:
                    index = keys.index(shows)
        return self.blocks if index is None else self.variants[index][3]


@dataclass(slots=True)
class Running:
    """The running experiments of one definitions load, indexed for the request path."""

    experiments: tuple[RunningExperiment, ...] = ()
    by_id: dict[str, RunningExperiment] = field(default_factory=dict)
    by_page: dict[int, tuple[RunningExperiment, ...]] = field(default_factory=dict)
    by_block: dict[str, tuple[RunningExperiment, ...]] = field(default_factory=dict)
    by_path: dict[str, int] = field(default_factory=dict)  # URL path -> page id (cache-safe)
    global_holdout: RunningExperiment | None = None
    generation: int = 0  # which definitions load this is (caches keyed on it)
    # What each running experiment's page can show (its blocks, its page variants and theirs),
    # for Running.served; a page that could not be read is left out. None: not read yet (read
    # on first use, by the drain: the request path never needs it).
    points: dict[int, PagePoints] | None = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def block_chain(self, page_id: int | None, block_id: str | None) -> list[RunningExperiment]:
        """The experiments that may decide a personalised block, in the order they are tried:
        those on the block's variants, then the holdout experiments on its page (on this
        block, or on the whole page). A block experiment applies on its own page only (a
        copied page, a page variant made from it, keep the block's id; a page variant is served
        under its canonical page's id)."""
        found = [
            e
            for e in (self.by_block.get(block_id, ()) if block_id else ())
            if e.page_id in (None, page_id)
        ]
        if page_id is not None:
            found += [
                e
                for e in self.by_page.get(page_id, ())
                if e.kind == KIND_HOLDOUT and (not e.block_id or e.block_id == block_id)
            ]
        return found

    def page_chain(self, page_id: int | None) -> list[RunningExperiment]:
        """The experiments that may decide a page's variants, in the order they are tried: the
        page experiments, then the holdout experiments on the whole page."""
        on = self.by_page.get(page_id, ()) if page_id is not None else ()
        return [e for e in on if e.kind == KIND_PAGE] + [
            e for e in on if e.kind == KIND_HOLDOUT and not e.block_id
        ]

    def on_page(self, page_id: int | None) -> tuple[RunningExperiment, ...]:
        """Every experiment a page view of ``page_id`` may expose a visitor to (eligibility
        and enrolment aside): those on the page, and the global holdout."""
        found = self.by_page.get(page_id, ()) if page_id is not None else ()
        if self.global_holdout is not None:
            return (*found, self.global_holdout)
        return found

    def in_global_holdout(self, visitor_key: str, assignments: Mapping[str, str]) -> bool:
        """Whether a consented visitor is held out of all personalization (while a global
        holdout runs)."""
        holdout = self.global_holdout
        if holdout is None:
            return False
        return holdout.arm(visitor_key, assignments.get(holdout.id)) == 0

    def page_points(self, page_id: int | None) -> PagePoints | None:
        """What the page ``page_id`` can show (None: not a running experiment's page, or it
        could not be read), read for all of them on first use."""
        if self.points is None:  # once per definitions load (two threads may both read it)
            self.points = _points(self.by_page)
        return self.points.get(page_id) if page_id is not None else None

    def served(
        self,
        page_id: int | None,
        visitor_key: str,
        assignments: Mapping[str, str],
        segments,
    ) -> dict[RunningExperiment, int]:
        """The experiments whose arm decides something a page view of ``page_id`` shows this
        consented visitor, with that arm: what the drain enrols and counts them in, and all it
        may (a visitor is counted in an arm only when that arm decided what they saw).

        - While a global holdout runs, it decides for everyone (held out, or personalised);
          a visitor it holds out sees default content everywhere: no other experiment.
        - Each decision point of the page (its page variants, and each personalised block of
          the page actually served) is decided by the first experiment of its chain
          (:meth:`page_chain`, :meth:`block_chain`) that the visitor is eligible for and
          enrolled in (:func:`decider`): one outside its coverage or namespace leaves the
          point to the next, as the request path does.
        - Which page is served at ``page_id``'s URL is resolved as the request path resolves
          it (:meth:`PagePoints.shown`): the page's variants are a decision point only while
          it has servable ones, and a block experiment (or a holdout on one block) counts only
          when the page or the variant served holds its block. A page variant without the
          block, chosen for the visitor's segments or by a page experiment's arm, never
          showed them the block's arm.
        - A holdout experiment on the whole page decides the served page's other personalised
          blocks and its variants.
        - Where the definitions load could not read the page (:attr:`points`), every
          experiment on the page that names a point counts, and a whole-page holdout counts
          as deciding.
        """
        out: dict[RunningExperiment, int] = {}
        holdout = self.global_holdout
        if holdout is not None:
            arm = holdout.arm(visitor_key, assignments.get(holdout.id))
            if arm is not None:
                out[holdout] = arm
                if arm == 0:
                    return out
        on = self.by_page.get(page_id, ()) if page_id is not None else ()
        if not on:
            return out
        arms: dict[RunningExperiment, int | None] = {}
        known = self.page_points(page_id)
        named = {e.block_id for e in on if e.kind in (KIND_BLOCK, KIND_HOLDOUT) and e.block_id}
        whole = [e for e in on if e.kind == KIND_HOLDOUT and not e.block_id]
        chains: list[list[RunningExperiment]] = []
        if known is None:
            blocks = named
            if any(e.kind == KIND_PAGE for e in on):
                chains.append(self.page_chain(page_id))
            elif whole:
                chains.append(whole)  # what else the page holds is unknown: the holdout decides
        else:
            decided = None
            if known.variants:
                decided = decider(
                    self.page_chain(page_id), visitor_key, assignments, segments, arms
                )
                if decided is not None:
                    out[decided[0]] = decided[1]
            # The blocks of the page served; a block the page and its variants do not hold at
            # the top level of a StreamField (placed from code, nested) is left as it was.
            blocks = set(known.shown(decided, segments)) | (named - known.anywhere)
        for block_id in sorted(blocks):
            chains.append(self.block_chain(page_id, block_id))
        # Block experiments without a block id (never started from the admin) name one point.
        unnamed = [e for e in on if e.kind == KIND_BLOCK and not e.block_id]
        if unnamed:
            chains.append(unnamed)
        for chain in chains:
            found = decider(chain, visitor_key, assignments, segments, arms)
            if found is not None:
                out[found[0]] = found[1]
        return out


def decider(
    chain,
    visitor_key: str,
    assignments: Mapping[str, str],
    segments,
    examined: dict | None = None,
) -> tuple[RunningExperiment, int] | None:
    """The first experiment of ``chain`` that a visitor in ``segments`` is eligible for and
    enrolled in (an arm, or its holdout), with the arm; ``examined`` collects the arm of each
    experiment tried ({experiment: arm or None}; the cache-safe key must hold them all)."""
    for experiment in chain:
        if not experiment.eligible(segments):
            continue
        if examined is not None and experiment in examined:
            arm = examined[experiment]
        else:
            arm = experiment.arm(visitor_key, assignments.get(experiment.id), segments)
            if examined is not None:
                examined[experiment] = arm
        if arm is not None:
            return experiment, arm
    return None


DEFINITIONS = "experiments"  # their part of the shared definitions freshness check
# (loaded at, the definitions stamps it was loaded with or None when pinned, the running
# experiments, the last answer of the check seen to agree with them)
_cache: tuple[float, tuple | None, Running, dict | None] | None = None
_generations = itertools.count(1)
_lock = threading.Lock()


def _stamp(stamps) -> tuple:
    """What the running experiments depend on in the shared freshness check: the experiments
    and their arms, and the segments (an experiment's segment slug, a bandit's per-segment
    split ordered by priority)."""
    from segments.api import SEGMENT_DEFINITIONS

    return stamps.get(SEGMENT_DEFINITIONS), stamps.get(DEFINITIONS)


def _current(cached) -> bool:
    global _cache
    loaded, stamp, value, seen = cached
    if stamp is None:  # pinned
        return True
    limit = get_setting("EXPERIMENTS_DEFINITIONS_CACHE_SECONDS")
    if limit is not None and time.monotonic() - loaded >= float(limit):
        return False
    stamps = _definitions_stamps()
    if stamps is seen:  # the check's answer has not changed since it last agreed
        return True
    if _stamp(stamps) != stamp:
        return False
    _cache = (loaded, stamp, value, stamps)
    return True


def _definitions_stamps(refresh: bool = False) -> dict:
    from segments.api import definitions_stamps

    return definitions_stamps(refresh=refresh)


def running() -> Running:
    """The running experiments, per process. They are read again when the segments' shared
    freshness check (:func:`segments.api.definitions_stamps`: one small query at most every
    ``SEGMENTS_DEFINITIONS_CHECK_SECONDS`` per process, which the request path makes for the
    segments anyway) sees an experiment, an arm or a segment added, deleted or saved, and
    after ``EXPERIMENTS_DEFINITIONS_CACHE_SECONDS`` when that is set: no query of their own
    in between."""
    global _cache
    cached = _cache
    if cached is not None and _current(cached):
        return cached[2]
    with _lock:
        cached = _cache
        if cached is not None and _current(cached):
            return cached[2]
        stamps = _definitions_stamps(refresh=True)  # before the rows: see there
        value = load()
        _cache = (time.monotonic(), _stamp(stamps), value, stamps)
        return value


def forget() -> None:
    """Drop this process's copy (tests; after an editor starts, pauses or stops one)."""
    global _cache
    _cache = None


def page_changed(sender=None, instance=None, **kwargs) -> None:
    """A page published, unpublished or deleted (Wagtail's ``page_published`` and
    ``page_unpublished``, ``post_delete``): when it is a running experiment's page or a page
    variant of one, what that page can show (:class:`PagePoints`) changed, so the running
    experiments on it move their ``updated_at``: every process reads them again at its next
    freshness check (this one at once), and the drain never counts by a page or variant that
    is no longer what the page serves. One small query per publication."""
    # Lazy, as in load(): this module imports no model at import time (experiments.api).
    from django.utils import timezone
    from wagtail.models import Page

    from .models import Experiment

    if not isinstance(instance, Page):
        return

    pages = {instance.pk, getattr(instance, "variant_of_id", None)} - {None}
    moved = Experiment.objects.filter(status=Experiment.Status.RUNNING, page_id__in=pages).update(
        updated_at=timezone.now()
    )
    if moved:
        forget()


def pin(value: Running) -> None:
    """Make ``value`` this process's running experiments until :func:`forget` (benchmarks
    measuring the same page with and without experiments, in one process)."""
    global _cache
    _cache = (math.inf, None, value, None)


def _segment_splits(experiment, arms, seed: str, namespace, priorities: Mapping[str, int]):
    """A bandit's per-segment allocations (its reweighting's ``segment_weights``), highest
    priority first, for the segments that are still enabled."""
    found = []
    for slug, weights in (getattr(experiment, "segment_weights", None) or {}).items():
        if slug not in priorities or not isinstance(weights, list) or len(weights) != len(arms):
            continue
        clean = tuple(max(float(w), 0.0) for w in weights)
        total = sum(clean)
        if total <= 0:
            continue
        normalised = tuple(w / total for w in clean)
        allocation = Allocation(
            seed=seed,
            weights=normalised,
            coverage=experiment.coverage,
            hash_version=experiment.hash_version,
            namespace=namespace,
        )
        found.append((slug, allocation, normalised))
    found.sort(key=lambda item: (-priorities[item[0]], item[0]))
    return tuple(found)


def build(
    experiment, arms, segment_slug: str | None, priorities: Mapping[str, int] | None = None
) -> RunningExperiment:
    """A :class:`RunningExperiment` from an Experiment row and its arms (in order);
    ``priorities`` ({slug: priority} of the enabled segments) order a bandit's per-segment
    splits."""
    keys = tuple(a.key for a in arms)
    weights = tuple(max(float(a.weight), 0.0) for a in arms)
    total = sum(weights)
    normalised = tuple(w / total for w in weights) if total > 0 else weights
    namespace = (
        (experiment.namespace, experiment.namespace_start, experiment.namespace_end)
        if experiment.namespace
        else None
    )
    if experiment.kind == KIND_GLOBAL_HOLDOUT:
        allocation = Allocation(seed=GLOBAL_HOLDOUT_SEED, weights=(0.5, 0.5), hash_version=2)
        return _GlobalHoldout(
            pk=experiment.pk,
            id=str(experiment.pk),
            key=experiment.key,
            kind=experiment.kind,
            page_id=None,
            block_id="",
            segment=None,
            version=experiment.assignment_version,
            arm_keys=keys,
            weights=weights,
            holdout=0.0,
            allocation=allocation,
        )
    holdout = min(max(float(experiment.holdout_percent) / 100, 0.0), 1.0)
    seed = f"{experiment.key}:{experiment.assignment_version}"
    return RunningExperiment(
        pk=experiment.pk,
        id=str(experiment.pk),
        key=experiment.key,
        kind=experiment.kind,
        page_id=experiment.page_id,
        block_id=experiment.block_id or "",
        segment=segment_slug,
        version=experiment.assignment_version,
        arm_keys=keys,
        weights=weights,
        holdout=holdout,
        allocation=Allocation(
            seed=seed,
            weights=normalised,
            coverage=experiment.coverage,
            hash_version=experiment.hash_version,
            namespace=namespace,
        ),
        _holdout=Allocation(seed="holdout:" + experiment.key, weights=(0.5, 0.5))
        if holdout > 0
        else None,
        by_segment=_segment_splits(experiment, arms, seed, namespace, priorities or {})
        if experiment.mode == MODE_BANDIT and segment_slug is None
        else (),
    )


def load() -> Running:
    """Read the running experiments from the database (two queries, and the URLs of their
    pages for cache-safe mode; what their pages can show, :class:`PagePoints`, is read when the
    drain first needs it); none where the
    experiments app is not installed (a site may leave it out: personalization then decides
    by segments alone)."""
    from django.apps import apps

    if not apps.is_installed("experiments"):
        return index([])
    from segments.api import segment_priorities

    from .models import Experiment

    return index(
        Experiment.objects.filter(status=Experiment.Status.RUNNING)
        .select_related("segment")
        .prefetch_related("arms")
        .order_by("pk"),
        segment_priorities(),
    )


def index(rows, priorities: Mapping[str, int] | None = None) -> Running:
    """A :class:`Running` of these Experiment rows (their arms and segment prefetched);
    ``priorities``: {slug: priority} of the enabled segments."""
    result = Running(generation=next(_generations))
    by_page: dict[int, list[RunningExperiment]] = {}
    by_block: dict[str, list[RunningExperiment]] = {}
    experiments = []
    for row in rows:
        arms = sorted(row.arms.all(), key=lambda a: a.index)
        if len(arms) < 2:
            continue  # nothing to compare: not run
        experiment = build(row, arms, row.segment.slug if row.segment_id else None, priorities)
        experiments.append(experiment)
        result.by_id[experiment.id] = experiment
        if experiment.kind == KIND_GLOBAL_HOLDOUT:
            if result.global_holdout is None:
                result.global_holdout = experiment
            continue
        if experiment.page_id is not None:
            by_page.setdefault(experiment.page_id, []).append(experiment)
        if experiment.kind == KIND_BLOCK and experiment.block_id:
            by_block.setdefault(experiment.block_id, []).append(experiment)
    result.experiments = tuple(experiments)
    result.by_page = {k: tuple(v) for k, v in by_page.items()}
    result.by_block = {k: tuple(v) for k, v in by_block.items()}
    result.by_path = _paths(result.by_page)
    result.points = None  # read by the drain on first use (Running.served)
    return result


def _points(by_page) -> dict[int, PagePoints]:
    """What each running experiment's page can show (:class:`PagePoints`, for
    :meth:`Running.served`): its personalised blocks, and its servable page variants in the
    order the request path tries them, with theirs. Read at most once per definitions load, a
    few queries a page, by the drain only; a page that cannot be read is left out (its
    experiments then count as they name a point)."""
    if not by_page:
        return {}
    from wagtail.models import Page

    from .targets import personalised_blocks

    points = {}
    for page in Page.objects.filter(pk__in=list(by_page)).specific():
        try:
            # A page model with whole-page variants (cms_blocks' PageVariantMixin) lists the
            # servable ones, in the order its serve() tries them: (page id, segments, all).
            listed = getattr(page, "live_variants", None)
            rows = (
                list(listed())
                if callable(listed) and not getattr(page, "variant_of_id", None)
                else []
            )
            pages = (
                {p.pk: p for p in Page.objects.filter(pk__in=[r[0] for r in rows]).specific()}
                if rows
                else {}
            )
            points[page.pk] = PagePoints(
                frozenset(personalised_blocks(page)),
                tuple(
                    (
                        str(pk),
                        frozenset(segments),
                        bool(match_all),
                        frozenset(personalised_blocks(pages[pk])),
                    )
                    for pk, segments, match_all in rows
                    if pk in pages
                ),
            )
        except Exception:  # noqa: S112 - a page model that cannot be read: unknown
            continue
    return points


def _paths(by_page) -> dict[str, int]:
    """The URL path of each experiment's page (for cache-safe mode, which keys a response
    before the page is routed); a page without a URL is left out."""
    if not by_page:
        return {}
    from wagtail.models import Page

    paths = {}
    for page in Page.objects.filter(pk__in=list(by_page)).only("pk", "url_path", "path", "depth"):
        parts = page.get_url_parts()
        if parts is not None and parts[2]:
            paths[parts[2]] = page.pk
    return paths
