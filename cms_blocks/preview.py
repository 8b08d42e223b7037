"""Preview a page as any combination of segments, or as a visitor without consent, and share
such a preview with reviewers through a signed, expiring, read-only link.

Page models opt in with :class:`SegmentPreviewMixin`: it adds Wagtail preview modes (one per
segment, and "without consent") to the page editor's preview panel and applies the mode when
Wagtail renders a preview. A mode is a string, so any combination works in a URL
(``?mode=segments:engaged,vip``); the "Preview as segments" screen builds them with checkboxes.

A preview shows what such a visitor gets, whole-page variants included: previewing a page that
has variants (:class:`cms_blocks.models.PageVariantMixin`) renders the live variant that
visitor would be served at the page's URL instead (:func:`shown_page`), its personalised
blocks decided for the same segments; previewing a variant itself renders the variant.

A preview never records an event and never reads or changes anyone's memberships: the request
is given a consent state without an identifier and a fixed set of segments
(:func:`personalization.api.preview_as`), and the response forbids the page's scripts to send
anything (``Content-Security-Policy: connect-src 'none'``), so the tracker's beacons stay in the
browser. Normal page views pay nothing for this: only Wagtail's preview views and the share
link's view run it.
"""

import time
from dataclasses import dataclass

from django.core import signing
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from wagtail.models import PreviewableMixin

from personalization.api import preview_as
from segments.api import segment_choices

SEGMENTS_PREFIX = "segments:"
NO_CONSENT = "no-consent"
SHARE_SALT = "cms_blocks.preview.share"
MAX_SEGMENTS = 32


@dataclass(frozen=True)
class PreviewAs:
    """Who a preview shows the page to: a set of segments, with or without consent."""

    segments: frozenset[str] = frozenset()
    consented: bool = True

    @property
    def mode(self) -> str:
        """The Wagtail preview mode name: ``""`` (no segment), ``segments:a,b``,
        ``no-consent`` or ``no-consent:a,b`` (context-only segments)."""
        slugs = ",".join(sorted(self.segments))
        if not self.consented:
            return f"{NO_CONSENT}:{slugs}" if slugs else NO_CONSENT
        return f"{SEGMENTS_PREFIX}{slugs}" if slugs else ""

    @classmethod
    def from_mode(cls, mode: str | None) -> "PreviewAs":
        mode = mode or ""
        consented = True
        if mode == NO_CONSENT or mode.startswith(f"{NO_CONSENT}:"):
            consented, rest = False, mode[len(NO_CONSENT) + 1 :]
        elif mode.startswith(SEGMENTS_PREFIX):
            rest = mode[len(SEGMENTS_PREFIX) :]
        else:
            rest = ""
        slugs = frozenset(s for s in rest.split(",") if s)
        return cls(frozenset(sorted(slugs)[:MAX_SEGMENTS]), consented)

    def known(self) -> "PreviewAs":
        """The same, keeping only segments that exist."""
        existing = {slug for slug, _name in segment_choices()}
        return PreviewAs(self.segments & existing, self.consented)

    def label(self) -> str:
        names = dict(segment_choices())
        who = ", ".join(names.get(s, s) for s in sorted(self.segments)) or str(_("no segment"))
        if not self.consented:
            return str(_("A visitor without consent (%(who)s)")) % {"who": who}
        return str(_("A visitor in: %(who)s")) % {"who": who}


def protect(response):
    """Headers of every preview response: never cached, never indexed, and the page's scripts
    may not send anything (no beacon, no fetch) while it is shown."""
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex, nofollow"
    if not response.has_header("Content-Security-Policy"):
        response["Content-Security-Policy"] = "connect-src 'none'"
    return response


def apply(request, who: PreviewAs) -> frozenset[str]:
    """Make ``request`` render as ``who`` sees it (see the module docstring)."""
    request.tailored_preview = who
    return preview_as(request, who.segments, consented=who.consented)


VARIANT_HEADER = "X-Tailored-Preview-Variant"


def shown_page(page, request):
    """The page a visitor with ``request``'s (previewed) segments is served at ``page``'s URL:
    the live variant they qualify for, as :meth:`PageVariantMixin.variant_for` chooses it for
    real visitors, else ``page`` itself (also for a page type without variants)."""
    variant_for = getattr(page, "variant_for", None)
    if variant_for is None:
        return page
    return variant_for(request) or page


class SegmentPreviewMixin(PreviewableMixin):
    """Add to page models (before ``Page``) to preview them as segments::

    class HomePage(SegmentPreviewMixin, Page): ...
    """

    @property
    def preview_modes(self):
        modes = [("", _("Everyone (no segment)"))]
        modes += [
            (PreviewAs(frozenset({slug})).mode, _("As “%(name)s”") % {"name": name})
            for slug, name in segment_choices()
        ]
        modes.append((NO_CONSENT, _("A visitor without consent")))
        return modes

    # Listings ask every page these; answering without the segment query keeps them cheap.
    def is_previewable(self):
        return True

    @property
    def default_preview_mode(self):
        return ""

    def serve_preview(self, request, mode_name):
        apply(request, PreviewAs.from_mode(mode_name).known())
        shown = shown_page(self, request)
        if shown is not self:
            # What these visitors get at this URL: the variant (its own preview, which never
            # substitutes again: a variant has no variants).
            response = shown.serve_preview(request, mode_name)
            response[VARIANT_HEADER] = str(shown.pk)
            return response
        return protect(super().serve_preview(request, mode_name))


def supports_segment_preview(page) -> bool:
    return isinstance(page, SegmentPreviewMixin)


# -- share links -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShareLink:
    page_id: int
    who: PreviewAs
    expires_at: float
    created_by: int | None = None


class LinkExpired(Exception):
    """A genuine link whose time is up."""


def make_token(link: ShareLink) -> str:
    payload = {
        "p": link.page_id,
        "s": sorted(link.who.segments),
        "c": int(link.who.consented),
        "e": int(link.expires_at),
        "u": link.created_by,
    }
    return signing.dumps(payload, salt=SHARE_SALT, compress=True)


def read_token(token: str, now: float | None = None) -> ShareLink:
    """The link a token stands for. Raises ``signing.BadSignature`` for a token that was not
    made here (or was altered) and :class:`LinkExpired` for one whose time is up."""
    payload = signing.loads(token, salt=SHARE_SALT)
    try:
        link = ShareLink(
            page_id=int(payload["p"]),
            who=PreviewAs(
                frozenset(str(s) for s in payload["s"][:MAX_SEGMENTS]), bool(payload["c"])
            ),
            expires_at=float(payload["e"]),
            created_by=payload.get("u"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise signing.BadSignature("malformed share link") from exc
    if (time.time() if now is None else now) >= link.expires_at:
        raise LinkExpired
    return link
