"""Which arm of an experiment a visitor is in (pure: standard library only, no Django).

GrowthBook's published bucketing algorithm, so that any GrowthBook SDK (JavaScript, Python,
Go, ...) given the same seed, identifier and weights puts a visitor in the same arm:

- ``hash(seed, value, version)``: FNV-1a 32-bit over the string's UTF-16 code units (what the
  JavaScript SDK's ``charCodeAt`` loop sees; for ASCII, its bytes). Version 2:
  ``fnv(str(fnv(seed + value))) % 10000 / 10000``; version 1: ``fnv(value + seed) % 1000 / 1000``;
  any other version: ``None``.
- ``bucket_ranges(n, coverage, weights)``: arm *i* owns ``[c_i, c_i + coverage * w_i)`` where
  ``c_i`` is the sum of the weights before it. Coverage is clamped to 0..1; weights of the wrong
  length, negative, not finite, or not summing to 1 +/- 0.01 are replaced by equal weights.
- ``choose_variation(n, ranges)``: the first range holding ``n``, else -1.
- ``in_namespace(value, (name, start, end))``: version-1 hash with seed ``"__" + name`` in
  ``[start, end)``; experiments in one namespace with disjoint ranges never share a visitor.

Because each arm's range starts at the same cumulative weight whatever the coverage, ramping
coverage up only adds visitors: a visitor enrolled at a lower coverage keeps their arm.
(Changing the weights does move visitors; that is why the app keeps sticky assignments.)

The request path evaluates every running experiment for every consented page view, so the
convenience layer is built for speed: :class:`Allocation` precomputes an experiment's ranges and
the FNV state after its seed (the hash of ``seed + value`` continues from there), and
:class:`AllocationBatch` hashes one identifier for many experiments at once by running their
FNV states side by side in the 64-bit lanes of one Python integer (one multiplication per
character for all experiments instead of one per experiment).
"""

import math
import sys
from array import array
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "NOT_ENROLLED",
    "Allocation",
    "AllocationBatch",
    "assign",
    "bucket_ranges",
    "choose_variation",
    "equal_weights",
    "hash",
    "in_namespace",
    "valid_weights",
]

NOT_ENROLLED = -1

_OFFSET = 0x811C9DC5
_PRIME = 0x01000193
_MASK = 0xFFFFFFFF
# Above this many code units, mask at every step so the running integer stays small.
_DEFERRED_MASK_LIMIT = 64
WEIGHT_SUM_MIN = 0.99
WEIGHT_SUM_MAX = 1.01

Range = tuple[float, float]
Namespace = tuple[str, float, float]


def _code_units(text: str) -> bytes | array:
    """The UTF-16 code units of ``text`` (its bytes when it is ASCII, the common case)."""
    if text.isascii():
        return text.encode("ascii")
    units = array("H", text.encode("utf-16-le", "surrogatepass"))
    if sys.byteorder == "big":
        units.byteswap()
    return units


def _fnv(state: int, units) -> int:
    """Continue FNV-1a 32 from ``state`` over ``units``.

    XOR with a code unit (< 2**16) only touches the low 32 bits, and the low 32 bits of a
    product depend only on the low 32 bits of its factors, so reducing modulo 2**32 once at the
    end gives the same value as reducing at every step, for one operation less per unit.
    """
    if len(units) <= _DEFERRED_MASK_LIMIT:
        for unit in units:
            state = (state ^ unit) * _PRIME
    else:
        for unit in units:
            state = ((state ^ unit) * _PRIME) & _MASK
    return state & _MASK


def _v2_finish(first: int) -> float:
    # Version 2 hashes the decimal string of the first hash again (ASCII digits).
    return (_fnv(_OFFSET, b"%d" % first) % 10000) / 10000


def hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's ``hash``: a float in [0, 1) for versions 1 and 2, ``None`` otherwise."""
    if version == 2:
        return _v2_finish(_fnv(_OFFSET, _code_units(seed + value)))
    if version == 1:
        return (_fnv(_OFFSET, _code_units(value + seed)) % 1000) / 1000
    return None


def equal_weights(n: int) -> list[float]:
    return [1 / n for _ in range(n)] if n >= 1 else []


def valid_weights(n: int, weights) -> bool:
    """Whether ``weights`` can be used as they are for ``n`` arms (else equal weights are).

    One finite, non-negative real number per arm (booleans are not numbers here), summing to
    1 within 0.01, as GrowthBook requires. A tuple is accepted as well as a list.
    """
    if not isinstance(weights, list | tuple) or len(weights) != n:
        return False
    try:
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, int | float):
                return False
            if not math.isfinite(w) or w < 0:
                return False
        return WEIGHT_SUM_MIN <= sum(weights) <= WEIGHT_SUM_MAX
    except OverflowError:  # an int too large for a float
        return False


def bucket_ranges(
    n: int, coverage: float = 1, weights: Sequence[float] | None = None
) -> list[Range]:
    """GrowthBook's ``getBucketRanges``: one ``(start, end)`` per arm."""
    if coverage < 0:
        coverage = 0
    if coverage > 1:
        coverage = 1
    used = weights if valid_weights(n, weights) else equal_weights(n)
    ranges = []
    cumulative = 0
    for w in used:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def choose_variation(n: float, ranges: Sequence[Range]) -> int:
    """GrowthBook's ``chooseVariation``: index of the first range with ``start <= n < end``."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return NOT_ENROLLED


def in_namespace(value: str, namespace: Namespace) -> bool:
    """GrowthBook's ``inNamespace``."""
    n = hash("__" + namespace[0], value, 1)
    if n is None:
        return False
    return namespace[1] <= n < namespace[2]


class Allocation:
    """One experiment's assignment rule, precomputed: ``allocation.assign(value)`` -> arm or -1.

    The number of arms is ``len(weights)``. As in GrowthBook's ``run``: an experiment with fewer
    than two arms, an empty identifier, a visitor outside the namespace, an unknown hash version,
    or a hash outside every range (coverage < 1) gives -1 (not enrolled: default content, nothing
    recorded).
    """

    __slots__ = (
        "_namespace_units",
        "_ranges",
        "_seed_state",
        "_seed_units",
        "coverage",
        "hash_version",
        "namespace",
        "ranges",
        "seed",
        "weights",
    )

    def __init__(
        self,
        *,
        seed: str,
        weights: Sequence[float],
        coverage: float = 1,
        hash_version: int = 2,
        namespace: Namespace | None = None,
    ):
        self.seed = seed
        self.weights = tuple(weights)
        self.coverage = coverage
        self.hash_version = hash_version
        self.namespace = namespace
        n = len(self.weights)
        self.ranges: tuple[Range, ...] = tuple(bucket_ranges(n, coverage, list(self.weights)))
        # Ranges that can never hold a hash are dropped from the hot loop, keeping the indices.
        self._ranges = (
            tuple((i, s, e) for i, (s, e) in enumerate(self.ranges) if s < e) if n >= 2 else ()
        )
        self._seed_units = _code_units(seed)
        self._seed_state = _fnv(_OFFSET, self._seed_units) if hash_version == 2 else None
        self._namespace_units = _code_units("__" + namespace[0]) if namespace is not None else None

    def __repr__(self):
        return (
            f"Allocation(seed={self.seed!r}, weights={list(self.weights)!r}, "
            f"coverage={self.coverage!r}, hash_version={self.hash_version!r}, "
            f"namespace={self.namespace!r})"
        )

    def bucket(self, value: str) -> float | None:
        """``hash(seed, value, hash_version)``, from the precomputed seed state."""
        if self._seed_state is not None:
            return _v2_finish(_fnv(self._seed_state, _code_units(value)))
        return hash(self.seed, value, self.hash_version)

    def _choose(self, n: float) -> int:
        for index, start, end in self._ranges:
            if start <= n < end:
                return index
        return NOT_ENROLLED

    def _in_namespace(self, value_state: int) -> bool:
        ns = self.namespace
        n = (_fnv(value_state, self._namespace_units) % 1000) / 1000
        return ns[1] <= n < ns[2]

    def assign(self, value: str) -> int:
        if not value or not self._ranges:
            return NOT_ENROLLED
        if self.namespace is not None and not self._in_namespace(_fnv(_OFFSET, _code_units(value))):
            return NOT_ENROLLED
        n = self.bucket(value)
        if n is None:
            return NOT_ENROLLED
        return self._choose(n)


@lru_cache(maxsize=1024)
def _allocation(seed, weights, coverage, hash_version, namespace) -> Allocation:
    return Allocation(
        seed=seed,
        weights=weights,
        coverage=coverage,
        hash_version=hash_version,
        namespace=namespace,
    )


def assign(
    value: str,
    *,
    seed: str,
    weights: Sequence[float],
    coverage: float = 1,
    hash_version: int = 2,
    namespace: Namespace | None = None,
) -> int:
    """The arm (index into ``weights``) of the visitor whose hash attribute is ``value``, or -1.

    Equivalent to GrowthBook's ``run`` of an experiment with ``len(weights)`` variations and
    these settings for a visitor with that attribute value. The precomputed :class:`Allocation`
    is cached per settings; for many experiments per request, build an
    :class:`AllocationBatch` once and call its ``assign``.
    """
    return _allocation(
        seed,
        tuple(weights),
        coverage,
        hash_version,
        tuple(namespace) if namespace is not None else None,
    ).assign(value)


class AllocationBatch:
    """Many experiments' allocations, evaluated together for one visitor.

    ``batch.assign(value)`` returns ``[allocation.assign(value) for allocation in allocations]``
    but runs the first FNV pass of every version-2 experiment in parallel: the per-experiment
    states (after each seed) sit in 64-bit lanes of one integer; XOR with the code unit
    replicated into every lane, multiply by the prime (a 32-bit state times a 25-bit prime
    fits in 57 bits, so lanes never carry into each other) and mask each lane back to 32 bits.
    Namespaces and version 1 hash ``value + seed``: the state after ``value`` is computed once
    and each seed continues from it.
    """

    __slots__ = (
        "_lane_mask",
        "_lane_ones",
        "_lanes",
        "_needs_value_state",
        "_packed_seeds",
        "_plan",
        "allocations",
    )

    _WIDTH = 64

    def __init__(self, allocations: Sequence[Allocation]):
        self.allocations = tuple(allocations)
        packed = ones = 0
        plan = []
        lanes = 0
        for index, allocation in enumerate(self.allocations):
            if not allocation._ranges or allocation.hash_version not in (1, 2):
                continue  # never enrolled: stays -1
            lane = None
            if allocation.hash_version == 2:
                lane = lanes
                packed |= allocation._seed_state << (self._WIDTH * lane)
                ones |= 1 << (self._WIDTH * lane)
                lanes += 1
            plan.append((index, allocation, lane))
        self._plan = tuple(plan)
        self._lanes = lanes
        self._packed_seeds = packed
        self._lane_ones = ones
        self._lane_mask = ones * _MASK
        self._needs_value_state = any(
            a.namespace is not None or a.hash_version == 1 for _, a, _ in plan
        )

    def __len__(self):
        return len(self.allocations)

    def assign(self, value: str) -> list[int]:
        result = [NOT_ENROLLED] * len(self.allocations)
        if not value or not self._plan:
            return result
        units = _code_units(value)
        # FNV state after the value alone: namespaces and version 1 continue from it.
        value_state = _fnv(_OFFSET, units) if self._needs_value_state else 0
        lanes = ()
        if self._lanes:
            state, ones, mask = self._packed_seeds, self._lane_ones, self._lane_mask
            for unit in units:
                state = ((state ^ (unit * ones)) * _PRIME) & mask
            lanes = array("Q", state.to_bytes(8 * self._lanes, "little"))
            if sys.byteorder == "big":
                lanes.byteswap()
        for index, allocation, lane in self._plan:
            if allocation.namespace is not None and not allocation._in_namespace(value_state):
                continue
            if lane is not None:
                n = _v2_finish(lanes[lane])
            else:
                n = (_fnv(value_state, allocation._seed_units) % 1000) / 1000
            result[index] = allocation._choose(n)
        return result
