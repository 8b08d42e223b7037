"""A request rendered as a chosen visitor (previews, share links, testutils): fixed segments,
nothing read from or written to the fast store."""

from django.http import HttpRequest

from consent.api import UNDECIDED, ConsentState, force_consent, purposes
from segments.api import context_only_slugs


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
        force_consent(
            request,
            ConsentState(decided=True, purposes=frozenset(purposes()), notice_version=None),
        )
    else:
        force_consent(request, UNDECIDED)
        chosen &= context_only_slugs()
    request.segments = chosen
    request.personalization = _PreviewVisitor(chosen)
    return chosen
