"""The personalization app's public Python API."""

from .choices import cache_safe, choose_for, in_segments, segments_for
from .decisions import Candidate, choose
from .preview import preview_as

__all__ = [
    "Candidate",
    "cache_safe",
    "choose",
    "choose_for",
    "in_segments",
    "preview_as",
    "segments_for",
]
