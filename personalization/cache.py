"""Cache-safe mode: personalised pages in a shared page cache (see docs/delivery.md).

Drop-in replacements for Django's two cache middlewares. The cached response varies on one
short *segment-set key* instead of the whole ``Cookie`` header, so visitors in the same segments
share cache entries and visitors in different segments never receive each other's variant::

    MIDDLEWARE = [
        "personalization.cache.UpdateCacheMiddleware",      # first
        ...,
        "consent.middleware.ConsentMiddleware",
        "personalization.middleware.PersonalizationMiddleware",
        "personalization.cache.FetchFromCacheMiddleware",   # last
    ]
    CONSENT_BANNER_MODE = "client"  # the banner must be the same markup for every visitor

The key is ``<content>.<stored>.<context>``, three short hashes:

- *content*: of the set ``M`` of segments that content has been seen to use (blocks, page
  variants, ``{% segment %}``). Only these matter, which keeps the number of keys low. ``M`` is
  learned: a render that consults a segment not yet in ``M`` is not cached, and ``M`` grows.
- *stored*: of a consented visitor's stored memberships within ``M``, read in the same round
  trip to the fast store that records the page view (which a consented page view makes
  anyway, hit or miss); ``-`` for a visitor without consent, who costs no round trip.
- *context*: of the visitor's context-only segments within ``M`` (device, campaign...),
  decided from this request, for every visitor.

``<content>.<stored>`` is also kept in the signed ``tl_seg`` cookie (refreshed by the response
when it changes; set only for visitors who consented to personalization, deleted when they no
longer do), which a cache in front of the site can key on (docs/delivery.md).

A response is stored only when it is safe to share: a GET without a session cookie, setting
no cookie (so never a CSRF token or a session), not marked private, whose render read segments
only through decisions (blocks, page variants, the tag, ``"slug" in request.segments``) on
segments within ``M``, never by listing ``request.segments``.

Responses leave with ``Vary: Cookie`` as Django would send them (downstream caches stay
safe) and ``X-Tailored-Cache: hit|miss|pass``.
"""

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware import cache as django_cache
from django.utils.cache import cc_delim_re, patch_vary_headers

from consent.api import get_consent
from experiments.api import running_experiments
from segments.api import context_segments, tracking_purpose

from .conf import get_setting

HEADER = "X-Tailored-Segments"
META_KEY = "HTTP_X_TAILORED_SEGMENTS"
STATUS_HEADER = "X-Tailored-Cache"
CONTENT_SEGMENTS_KEY = "tailored:content-segments"
_SALT = "tailored.personalization.segment-key"
_NONE = "-"


def _digest(slugs) -> str:
    return hashlib.blake2b("\n".join(sorted(slugs)).encode(), digest_size=5).hexdigest()


# -- the set of segments content uses ---------------------------------------------------------

_content: tuple[float, frozenset[str]] | None = None


def _page_cache():
    return caches[settings.CACHE_MIDDLEWARE_ALIAS]


def content_segments() -> frozenset[str]:
    """The segments content has been seen to use (shared through the page cache, re-read at
    most every ``PERSONALIZATION_CONTENT_SEGMENTS_REFRESH`` seconds)."""
    global _content
    cached = _content
    refresh = float(get_setting("PERSONALIZATION_CONTENT_SEGMENTS_REFRESH"))
    if cached is not None and time.monotonic() - cached[0] < refresh:
        return cached[1]
    stored = _page_cache().get(CONTENT_SEGMENTS_KEY)
    value = frozenset(stored or ())
    _content = (time.monotonic(), value)
    return value


def learn_content_segments(slugs: frozenset[str]) -> None:
    """Add segments a render consulted (a race between processes can lose an addition for a
    moment; the next render that needs it adds it again)."""
    global _content
    cache = _page_cache()
    merged = frozenset(cache.get(CONTENT_SEGMENTS_KEY) or ()) | slugs
    cache.set(CONTENT_SEGMENTS_KEY, sorted(merged), None)
    _content = (time.monotonic(), merged)


def forget() -> None:
    """Drop the per-process copy of the content segments (tests, settings changes)."""
    global _content
    _content = None
    _verified.clear()


@receiver(setting_changed)
def _forget_on_settings_change(**kwargs) -> None:
    forget()


# -- the signed cookie --------------------------------------------------------------------------

_verified: OrderedDict[str, str | None] = OrderedDict()
_VERIFIED_SIZE = 10_000


def read_cookie(request: HttpRequest) -> str | None:
    """The ``<content>.<stored>`` payload of a valid ``tl_seg`` cookie, or ``None``. A value is
    verified once per process (then remembered), so a page view costs one dict lookup."""
    raw = request.COOKIES.get(get_setting("PERSONALIZATION_SEGMENT_COOKIE_NAME"))
    if not raw or len(raw) > 128:
        return None
    if raw in _verified:
        return _verified[raw]
    try:
        payload = signing.Signer(salt=_SALT).unsign(raw)
    except signing.BadSignature:
        return None  # forged values are never remembered
    _verified[raw] = payload
    if len(_verified) > _VERIFIED_SIZE:
        _verified.popitem(last=False)
    return payload


def sign(payload: str) -> str:
    return signing.Signer(salt=_SALT).sign(payload)


# -- per-request state --------------------------------------------------------------------------


@dataclass(slots=True)
class CacheState:
    content: frozenset[str]
    context_all: frozenset[str]
    stored: frozenset[str] | None  # a consented visitor's stored memberships; None: no consent
    consulted: set[str] = field(default_factory=set)
    opaque: bool = False
    hit: bool = False
    # A consented visitor's arms in the experiments this page can show ({experiment id: arm,
    # None when not enrolled}), part of the key; ``noted``: the arms the render used.
    arms: dict[str, int | None] = field(default_factory=dict)
    noted: dict[str, int | None] = field(default_factory=dict)

    @property
    def consented(self) -> bool:
        return self.stored is not None

    def payload(self) -> str:
        """``<content>.<stored>``: what the ``tl_seg`` cookie carries."""
        content_hash = _digest(self.content)
        if self.stored is None:
            return f"{content_hash}.{_NONE}"
        return f"{content_hash}.{_digest(self.stored & self.content)}"

    def key(self) -> str:
        """``<content>.<stored>.<context>``: what the page cache varies on; and ``.<arms>``
        for a visitor in experiments this page can show (visitors in different arms never
        share a response; in the same arms and segments they do)."""
        key = f"{self.payload()}.{_digest(self.context_all & self.content)}"
        if self.arms:
            key += "." + _digest(f"{k}:{v}" for k, v in self.arms.items())
        return key


class CacheAwareSegments:
    """``request.segments`` in cache-safe mode: behaves as the visitor's set of segments, and
    notes how a template used it. ``"slug" in request.segments`` notes one segment; listing,
    counting or testing it for truth makes the page depend on every segment, so it is not
    cached."""

    __slots__ = ("_inner", "_state")

    def __init__(self, inner, state: CacheState):
        self._inner = inner
        self._state = state

    def peek(self) -> frozenset[str]:
        """The segments, without marking the page (for code that notes what it consults)."""
        return frozenset(self._inner) if self._inner is not None else frozenset()

    def _all(self) -> frozenset[str]:
        self._state.opaque = True
        return self.peek()

    def __contains__(self, slug) -> bool:
        self._state.consulted.add(str(slug))
        return slug in self.peek()

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __bool__(self) -> bool:
        return bool(self._all())

    def __repr__(self) -> str:
        return "<CacheAwareSegments>"


def cache_state(request: HttpRequest) -> CacheState | None:
    return getattr(request, "_tailored_cache", None)


def _begin(request: HttpRequest) -> CacheState | None:
    visitor = getattr(request, "personalization", None)
    if visitor is None:
        return None  # PersonalizationMiddleware did not run (check personalization.E004)
    if not visitor.cacheable:
        return None  # forced segments or consent (personalization.testutils): not shareable
    consent = get_consent(request)
    # (Sampled segments are drawn only for a consenting visitor: their memberships count as
    # stored, below, so the key holds them.)
    context_all = context_segments(visitor.context(), query=request.GET)
    stored = None
    running = running_experiments()
    if running.by_path and getattr(request, "_tailored_page_id", None) is None:
        # The page is routed only after this: the page view recorded now names the page of
        # an experiment from its path (what cms_blocks' before_serve_page hook would set).
        page_id = running.by_path.get(request.path)
        if page_id is not None:
            request._tailored_page_id = page_id
    if consent.visitor_key is not None and consent.allows(tracking_purpose()):
        # The round trip that records this page view also reads the memberships: the key is
        # always the visitor's current one, at no extra cost.
        stored = visitor.segments() - context_all
    state = CacheState(content=content_segments(), context_all=context_all, stored=stored)
    if stored is not None:
        state.arms = _arms(request, visitor, stored | context_all)
    request._tailored_cache = state
    request._tailored_consulted = state.consulted  # personalization.api notes decisions here
    request._tailored_arms = state.noted  # and the experiment arms they used
    request.segments = CacheAwareSegments(getattr(request, "segments", None), state)
    return state


def _arms(request: HttpRequest, visitor, segments: frozenset[str]) -> dict[str, int | None]:
    """The consented visitor's arm in each running experiment this page can show (those on its
    page, by path, that the visitor is eligible for; the global holdout), read from the sticky
    assignments the round trip returned, or by hashing. Every experiment a decision may try is
    in it (one that passes a block to the next decides nothing, but whether it passes is part
    of the page), except for a visitor the global holdout holds out: nothing else decides for
    them, so all of them share one cached page."""
    running = running_experiments()
    if not running:
        return {}
    state = visitor.experiment_state()
    if state is None:
        return {}
    key, assignments = state
    holdout = running.global_holdout
    if holdout is not None:
        arm = holdout.arm(key, assignments.get(holdout.id))
        if arm == 0:  # default content everywhere: no other experiment's arm matters
            return {holdout.id: arm}
    page_id = getattr(request, "_tailored_page_id", None)
    return {
        e.id: e.arm(key, assignments.get(e.id), segments)
        for e in running.on_page(page_id)
        if e.eligible(segments)
    }


def _replace_vary(response: HttpResponse, remove: str, add: str | None) -> None:
    values = [v for v in cc_delim_re.split(response.get("Vary", "")) if v]
    kept = [v for v in values if v.lower() != remove.lower()]
    if kept:
        response["Vary"] = ", ".join(kept)
    elif response.has_header("Vary"):
        del response["Vary"]
    if add:
        patch_vary_headers(response, (add,))


def _bypass(request: HttpRequest) -> bool:
    return request.method not in ("GET", "HEAD") or (
        settings.SESSION_COOKIE_NAME in request.COOKIES  # signed-in editors, sessions
    )


class FetchFromCacheMiddleware(django_cache.FetchFromCacheMiddleware):
    """Django's fetch middleware, looking pages up by the visitor's segment-set key. Put it
    last, after ``PersonalizationMiddleware``."""

    def process_request(self, request):
        request.META.pop(META_KEY, None)  # never a client's own header
        state = None if _bypass(request) else _begin(request)
        if state is None:
            request._cache_update_cache = False
            return None
        request.META[META_KEY] = state.key()
        response = super().process_request(request)
        state.hit = response is not None
        return response


class UpdateCacheMiddleware(django_cache.UpdateCacheMiddleware):
    """Django's update middleware, storing only responses that are safe to share, under the
    key of the segments they were rendered with. Put it first."""

    def process_response(self, request, response):
        state = cache_state(request)
        if state is None:
            response[STATUS_HEADER] = "pass"
            return super().process_response(request, response)
        if state.hit:
            response[STATUS_HEADER] = "hit"
        elif self._storable(request, response, state):
            _replace_vary(response, "Cookie", HEADER)
            response = super().process_response(request, response)
            response[STATUS_HEADER] = "miss"
        else:
            request._cache_update_cache = False
            response[STATUS_HEADER] = "pass"
        # What leaves says what Django would: the page varies with cookies.
        _replace_vary(response, HEADER, "Cookie")
        self._refresh_cookie(request, response, state)
        return response

    @staticmethod
    def _storable(request, response, state: CacheState) -> bool:
        if not getattr(request, "_cache_update_cache", False) or state.opaque:
            return False
        if any(state.arms.get(e, _NONE) != arm for e, arm in state.noted.items()):
            return False  # an arm the key does not hold decided something: not shareable
        new = frozenset(state.consulted) - state.content
        if new:
            learn_content_segments(new)  # the next render of this page can be cached
            return False
        return not response.cookies  # a CSRF token, a session, a consent decision: private

    @staticmethod
    def _refresh_cookie(request, response, state: CacheState) -> None:
        """Keep ``tl_seg`` equal to the visitor's key, for caches in front of the site (a CDN
        can key on it); only for visitors who consented to personalization."""
        name = get_setting("PERSONALIZATION_SEGMENT_COOKIE_NAME")
        if not state.consented:
            if name in request.COOKIES:
                response.delete_cookie(name, samesite="Lax")
            return
        payload = state.payload()
        if read_cookie(request) != payload and response.status_code < 400:
            response.set_cookie(
                name,
                sign(payload),
                max_age=get_setting("PERSONALIZATION_SEGMENT_COOKIE_MAX_AGE"),
                secure=request.is_secure(),
                httponly=True,
                samesite="Lax",
            )
