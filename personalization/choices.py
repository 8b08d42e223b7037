"""What this request's visitor should see: their segments as the middleware resolved them, and
the variant (or the yes/no of a ``{% segment %}``) that follows. Every decision notes the
segments it consulted, which cache-safe mode needs (:mod:`personalization.cache`)."""

from collections.abc import Iterable, Sequence
from typing import TypeVar

from django.http import HttpRequest

from .decisions import Candidate, choose

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
