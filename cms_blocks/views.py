"""The public side of share links: a reviewer without an admin account sees the page's latest
revision as the chosen visitor. Read-only (GET), never cached or indexed, and the link's token
does not leak through the Referer header."""

from django.core import signing
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from wagtail.models import Page

from .preview import LinkExpired, PreviewAs, apply, protect, read_token, supports_segment_preview


def _refused(request, message: str, status: int):
    response = TemplateResponse(
        request, "cms_blocks/share_refused.html", {"message": message}, status=status
    )
    response["Referrer-Policy"] = "no-referrer"
    return protect(response)


@require_GET
def share(request, token: str):
    # This request is no page view of the reviewer's: record nothing for it either.
    apply(request, PreviewAs())
    try:
        link = read_token(token)
    except LinkExpired:
        return _refused(request, _("This preview link has expired. Ask for a new one."), 410)
    except signing.BadSignature:
        return _refused(request, _("This preview link is not valid."), 404)
    page = Page.objects.filter(pk=link.page_id).first()
    if page is None:
        raise Http404
    page = page.specific
    if not supports_segment_preview(page):
        raise Http404
    revision = page.get_latest_revision_as_object()
    response = revision.make_preview_request(request, link.who.known().mode)
    response["Referrer-Policy"] = "no-referrer"
    return protect(response)
