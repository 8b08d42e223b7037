"""Which variant a visitor sees (pure: no Django)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Candidate(Generic[T]):
    """A variant shown to visitors in ``segments`` (all of them if ``match_all``, else any)."""

    segments: frozenset[str]
    value: T
    match_all: bool = False

    def matches(self, visitor_segments: frozenset[str]) -> bool:
        if not self.segments:
            return False
        if self.match_all:
            return self.segments <= visitor_segments
        return not self.segments.isdisjoint(visitor_segments)


def choose(candidates: Sequence[Candidate[T]], visitor_segments: Iterable[str]) -> int | None:
    """Index of the first candidate (in editor's priority order) the visitor matches, or None
    for the default content."""
    segments = (
        visitor_segments if isinstance(visitor_segments, frozenset) else frozenset(visitor_segments)
    )
    if not segments:
        return None
    for index, candidate in enumerate(candidates):
        if candidate.matches(segments):
            return index
    return None
