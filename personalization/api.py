"""The personalization app's public Python API."""

from .arms import Decision, decide
from .choices import cache_safe, choose_for, in_segments, segments_for
from .decisions import Candidate, choose
from .preview import preview_as
from .recommending import visitor_recommendations

__all__ = [
    "Candidate",
    "Decision",
    "cache_safe",
    "choose",
    "choose_for",
    "decide",
    "in_segments",
    "preview_as",
    "segments_for",
    "visitor_recommendations",
]
