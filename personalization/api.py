"""The personalization app's public Python API."""

from collections.abc import Iterable, Sequence
from typing import TypeVar

from django.http import HttpRequest

from consent.api import UNDECIDED, ConsentState, purposes
from segments.api import context_only_slugs

from .decisions import Candidate, choose

__all__ = [
    "Candidate",
    "cache_safe",
    "choose",
    "choose_for",
    "in_segments",
    "preview_as",
    "segments_for",
]

T = TypeVar("T")


def segments_for(request: HttpRequest | None) -> frozenset[str]:
    """The visitor's current segments; empty without a request, consent or fast store."""
    if request is None:
        return frozenset()
    segments = getattr(request, "segments", None)
    if segments is None:
        return frozenset()
    peek = getattr(segments, "peek", None)  # cache-safe mode: read without marking the page
    return peek() if peek is not None else frozenset(segments)


def _consulted(request: HttpRequest | None, slugs) -> None:
    """Note which segments a decision looked at (only in cache-safe mode, which needs it to
    know what a cached response depends on: see personalization.cache)."""
    consulted = getattr(request, "_tailored_consulted", None)
    if consulted is not None:
        consulted.update(slugs)


def choose_for(request: HttpRequest | None, candidates: Sequence[Candidate[T]]) -> int | None:
    """Index of the variant this request's visitor should see, or None for the default."""
    if not candidates:
        return None
    for candidate in candidates:
        _consulted(request, candidate.segments)
    return choose(candidates, segments_for(request))


def in_segments(request: HttpRequest | None, slugs: Iterable[str], match_all: bool = False) -> bool:
    """Whether the visitor is in any (or, with ``match_all``, every) one of ``slugs``;
    ``False`` without a request, consent or fast store, and for an empty ``slugs``."""
    wanted = frozenset(slugs)
    _consulted(request, wanted)
    return Candidate(wanted, None, match_all).matches(segments_for(request))


def cache_safe(request: HttpRequest | None) -> bool:
    """Whether this response may be stored in a shared cache by the cache-safe middleware
    (personalization.cache): then templates must not list the visitor's segments."""
    return getattr(request, "_tailored_cache", None) is not None


class _PreviewVisitor:
    """Stands in for the request's visitor state during a preview: fixed segments, nothing
    read from or written to the fast store."""

    __slots__ = ("_segments",)

    cacheable = False  # these are not the visitor's own segments: never a shared cache entry

    def __init__(self, segments: frozenset[str]):
        self._segments = segments

    def segments(self) -> frozenset[str]:
        return self._segments

    def context(self) -> dict[str, str]:
        return {}

    def finish(self, response) -> None:
        return None


def preview_as(request: HttpRequest, segments, *, consented: bool = True) -> frozenset[str]:
    """Make ``request`` render as a visitor in ``segments`` (a preview), without recording
    anything or touching anyone's stored memberships.

    With ``consented`` the visitor has granted every purpose but has no identifier (so nothing
    can be recorded under one); without it they have not decided yet (the banner shows) and
    only context-only segments can apply, as for a real visitor without consent. Returns the
    segments the request now has. Call it before anything reads ``request.segments``.
    """

    chosen = frozenset(segments)
    if consented:
        request.consent = ConsentState(
            decided=True, purposes=frozenset(purposes()), notice_version=None
        )
    else:
        request.consent = UNDECIDED
        chosen &= context_only_slugs()
    request.segments = chosen
    request.personalization = _PreviewVisitor(chosen)
    return chosen
