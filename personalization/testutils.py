"""Force a visitor's segments and consent in a site's own tests (after ``waffle.testutils``).

::

    from personalization.testutils import override_consent, override_segments

    @override_segments("engaged")
    def test_engaged_visitors_get_the_offer(client):
        assert "ENGAGED10" in client.get("/").content.decode()

    @override_consent(decided=False)
    def test_the_banner_shows_until_the_visitor_decides(client):
        assert "consent-banner" in client.get("/").content.decode()

Both are :class:`django.test.utils.TestContextDecorator` subclasses: decorators of test
functions (sync or async) and of ``unittest.TestCase`` classes (then every test of the class),
and context managers. They act on every request that goes through
``PersonalizationMiddleware`` while they are in force: the test client, Wagtail serving a page,
a ``RequestFactory`` request passed through the middleware, a live server running in the test
process. For that time they replace how the middleware builds a request's visitor state, with
the mechanism of a preview (:func:`personalization.api.preview_as`): the visitor has no
identifier, so nothing is recorded and nothing is read from the fast store. Responses under an
override never go into, or come from, the cache-safe page cache (personalization.cache).

Overrides nest. The innermost one decides what it sets (``override_segments``: the segments
and consent; ``override_consent``: consent only) and the rest comes from the one around it.
They end in the reverse order they began, as decorators and ``with`` blocks do. See
docs/testing.md.
"""

from dataclasses import dataclass, replace
from unittest import mock

from django.http import HttpRequest
from django.test.utils import TestContextDecorator

from consent.api import UNDECIDED, ConsentState, force_consent, get_consent
from consent.api import purposes as configured_purposes
from segments.api import tracking_purpose

from . import middleware
from .preview import preview_as
from .visitor import VisitorContext

__all__ = ["override_consent", "override_segments"]


@dataclass(frozen=True)
class _Forced:
    """What the overrides in force decide for every request (``None``: decided as usual)."""

    segments: frozenset[str] | None = None
    decided: bool | None = None  # None: the consent the visitor's own cookie carries
    granted: frozenset[str] | None = None  # when decided; None: every configured purpose

    def consent(self, request: HttpRequest) -> ConsentState:
        if self.decided is None:
            return get_consent(request)
        if not self.decided:
            return UNDECIDED
        granted = frozenset(configured_purposes()) if self.granted is None else self.granted
        # No identifier, as in a preview: nothing can be recorded under one.
        return ConsentState(decided=True, purposes=granted, notice_version=None)


class _ForcedConsentVisitor(VisitorContext):
    """The usual visitor state (context-only segments decided from the request) for a forced
    consent state, which has no identifier: no round trip to the fast store, nothing recorded."""

    __slots__ = ()
    cacheable = False


class _ForcedVisitors:
    """Takes the place of ``VisitorContext`` in personalization.middleware while overrides
    are in force: builds each request's visitor state from what they decide."""

    def __init__(self, forced: _Forced):
        self.forced = forced

    def __call__(self, request: HttpRequest):
        consent = self.forced.consent(request)
        if self.forced.segments is None:
            force_consent(request, consent)
            return _ForcedConsentVisitor(request)
        # A preview: without consent to personalization only context-only segments apply.
        preview_as(request, self.forced.segments, consented=consent.allows(tracking_purpose()))
        force_consent(request, consent)  # the exact purposes, where an override_consent says them
        return request.personalization


class _Override(TestContextDecorator):
    """Base of the overrides: patches the middleware's visitor factory while enabled."""

    def __init__(self):
        super().__init__()
        self._patchers: list = []  # one per enable(): the same decorator runs once per test

    def forced(self, enclosing: _Forced) -> _Forced:
        """What requests get under this override, inside ``enclosing``."""
        raise NotImplementedError

    def enable(self) -> None:
        current = middleware.VisitorContext
        enclosing = current.forced if isinstance(current, _ForcedVisitors) else _Forced()
        patcher = mock.patch.object(
            middleware, "VisitorContext", _ForcedVisitors(self.forced(enclosing))
        )
        patcher.start()
        self._patchers.append(patcher)

    def disable(self) -> None:
        self._patchers.pop().stop()


class override_segments(_Override):
    """Every request is from a visitor in exactly the segments ``slugs`` (none without any),
    as in a preview: stored memberships and context-only segments are not read, and nothing is
    recorded. Segments are given by slug; they need not exist.

    With ``consented`` (the default) the visitor has granted every purpose, without an
    identifier. With ``consented=False`` they have not decided yet: the banner shows and only
    the context-only ones among ``slugs`` apply, as for a real visitor without consent.

    ::

        @override_segments("engaged", "vip")
        def test_vip_offer(client): ...

        with override_segments("mobile", consented=False):
            response = client.get("/")
    """

    def __init__(self, *slugs: str, consented: bool = True):
        if not all(isinstance(slug, str) for slug in slugs):
            raise TypeError("Give the slugs as arguments: override_segments('a', 'b').")
        super().__init__()
        self.segments = frozenset(slugs)
        self.consented = consented

    def forced(self, enclosing: _Forced) -> _Forced:
        return _Forced(segments=self.segments, decided=self.consented)


class override_consent(_Override):
    """Every request is from a visitor who has granted exactly ``purposes`` (none: rejected
    everything), or with ``decided=False`` who has not decided yet (the banner shows).

    The visitor has no identifier: nothing is recorded and no stored membership is read.
    Context-only segments still apply (decided from the request, as for any visitor), and
    inside an ``override_segments`` its segments do, kept to the context-only ones unless the
    purposes include ``SEGMENTS_PURPOSE`` (personalization).

    ::

        @override_consent("analytics")
        def test_analytics_tag_only_with_consent(client): ...

        with override_consent(decided=False):
            assert "consent-banner" in client.get("/").content.decode()

    Raises ``ValueError`` for a purpose that ``CONSENT_PURPOSES`` does not name (when it
    begins, so settings overridden around it count).
    """

    def __init__(self, *purposes: str, decided: bool = True):
        if purposes and not decided:
            raise ValueError("A visitor who has not decided has granted no purpose.")
        super().__init__()
        self.purposes = frozenset(purposes)
        self.decided = decided

    def enable(self) -> None:
        unknown = self.purposes - set(configured_purposes())
        if unknown:
            raise ValueError(
                f"Unknown purpose(s): {', '.join(sorted(unknown))} "
                f"(CONSENT_PURPOSES: {', '.join(configured_purposes())})."
            )
        super().enable()

    def forced(self, enclosing: _Forced) -> _Forced:
        return replace(enclosing, decided=self.decided, granted=self.purposes)
