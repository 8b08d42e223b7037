"""What a recommendations block needs to know about the request's visitor."""

from collections.abc import Container

from django.http import HttpRequest


def visitor_recommendations(
    request: HttpRequest | None,
) -> tuple[dict[str, str] | None, Container[str]]:
    """(the consented visitor's recommendation fields, or None; their segments, to ask about
    with ``in``), from this request's one round trip. A preview or a visitor without consent:
    no fields (lists that need nothing about them), the segments they have.

    A page showing a list made for one visitor is not shared through the cache-safe page
    cache (personalization.cache)."""
    if request is None:
        return None, []
    visitor = getattr(request, "personalization", None)
    fields_of = getattr(visitor, "recommendation_fields", None)
    fields = fields_of() if fields_of is not None else None
    segments = getattr(request, "segments", None)
    if segments is None:
        segments = frozenset()
    if fields:
        cache = getattr(request, "_tailored_cache", None)
        if cache is not None:
            cache.opaque = True
    return fields, segments
