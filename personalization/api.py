"""The personalization app's public Python API."""

from collections.abc import Sequence
from typing import TypeVar

from django.http import HttpRequest

from .decisions import Candidate, choose

__all__ = ["Candidate", "choose", "choose_for", "segments_for"]

T = TypeVar("T")


def segments_for(request: HttpRequest | None) -> frozenset[str]:
    """The visitor's current segments; empty without a request, consent or fast store."""
    if request is None:
        return frozenset()
    segments = getattr(request, "segments", None)
    return frozenset(segments) if segments is not None else frozenset()


def choose_for(request: HttpRequest | None, candidates: Sequence[Candidate[T]]) -> int | None:
    """Index of the variant this request's visitor should see, or None for the default."""
    if not candidates:
        return None
    return choose(candidates, segments_for(request))
