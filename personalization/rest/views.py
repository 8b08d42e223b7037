"""Headless endpoints: the visitor's segments, and a page resolved for the visitor.

Thin edges: the decisions are the blocks' and pages' own (``get_api_representation``,
``variant_for``), run with this request, exactly as rendering the page would run them.
Responses are private to the visitor (``Cache-Control: private, no-store``).
"""

import logging

from django.db.models import Model
from django.utils.cache import add_never_cache_headers, patch_cache_control, patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from wagtail.fields import StreamField
from wagtail.models import Page

from consent.api import APIEndpoint, get_consent
from segments.api import tracking_purpose

from ..choices import segments_for
from .serializers import PersonalisedPageSerializer, VisitorSerializer

logger = logging.getLogger(__name__)


def visitor_data(request) -> dict:
    state = get_consent(request)
    consented = state.visitor_key is not None and state.allows(tracking_purpose())
    try:
        segments = sorted(segments_for(request))
    except Exception as exc:  # never a 500: no segments
        logger.warning("Could not read segments: %s", type(exc).__name__)
        segments = []
    return {"consented": consented, "segments": segments}


def stream_fields(page: Model, context: dict) -> dict:
    """The page's StreamFields as Wagtail's API v2 represents them (``StreamBlock.
    get_api_representation``: a list of ``{type, value, id}``), for this context; each child
    also gets its id in the context, as it does when rendered, so personalised blocks report
    the same block key as in the page's markup."""
    out = {}
    for model_field in page._meta.get_fields():
        if isinstance(model_field, StreamField):
            out[model_field.name] = [
                {
                    "type": child.block_type,
                    "value": child.block.get_api_representation(
                        child.value, {**context, "id": child.id}
                    ),
                    "id": child.id,
                }
                for child in getattr(page, model_field.name)
            ]
    return out


class PrivateAPIView(APIEndpoint):
    """An endpoint answering with the visitor's own data: never stored by any cache."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        patch_cache_control(response, private=True)
        patch_vary_headers(response, ("Cookie",))
        return response


class VisitorView(PrivateAPIView):
    """The current visitor's segments."""

    @extend_schema(responses=VisitorSerializer, operation_id="personalization_visitor")
    def get(self, request: Request) -> Response:
        return Response(visitor_data(request._request))


def servable(page: Page, request) -> bool:
    """Whether the site would serve ``page`` to ``request``: live, routable (under a site's root
    page: not Wagtail's root, nor a page outside every site) and not restricted from this
    request (a password not entered in this session, a login or group it lacks), as Wagtail's
    ``check_view_restrictions`` hook decides for every page it serves."""
    if not page.live or page.get_url_parts(request) is None:
        return False
    return all(r.accept_request(request) for r in page.get_view_restrictions())


NO_PAGE = "No live page with this id that this visitor may see."


class PageView(PrivateAPIView):
    """A live page with its personalised content resolved for the current visitor: only what
    the site would show this request at the page's URL (see :func:`servable`), else 404, the
    same answer as for an id that does not exist."""

    # The site's session login, as Wagtail's login and group restrictions read it (without an
    # authentication class, DRF would replace the request's user with an anonymous one).
    authentication_classes = [SessionAuthentication]

    @extend_schema(
        responses=PersonalisedPageSerializer,
        operation_id="personalization_page",
        parameters=[
            OpenApiParameter(
                "pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The page's id."
            )
        ],
    )
    def get(self, request: Request, pk: str) -> Response:
        django_request = request._request
        if not (pk.isascii() and pk.isdigit() and len(pk) <= 10):
            raise NotFound(NO_PAGE)
        page = Page.objects.live().filter(pk=int(pk)).first()
        if page is None or not servable(page, django_request):
            raise NotFound(NO_PAGE)
        page = page.specific
        original = page
        if getattr(page, "is_variant", False):
            original = page.variant_of.specific  # a variant's id resolves as its original
            # Its content is served at the original's URL: the original's restrictions count.
            if not servable(original, django_request):
                raise NotFound(NO_PAGE)
        # Decided under the canonical page's id, as the site serves it (cms_blocks'
        # before_serve_page hook): the experiments on the page decide its variants and, in the
        # variant served, the blocks it holds of the page; under the variant's own id they
        # would decide nothing there, and the response would not be what the page shows.
        django_request._tailored_page_id = original.pk
        served = original
        variant_for = getattr(original, "variant_for", None)
        if variant_for is not None:
            served = variant_for(django_request) or original
            if served is not original and not servable(served, django_request):
                served = original
        context = {"request": django_request, "page": served}
        return Response(
            {
                "id": original.pk,
                "title": served.title,
                "meta": {
                    "type": f"{type(original)._meta.app_label}.{type(original).__name__}",
                    "slug": original.slug,
                    "html_url": original.get_full_url(django_request),
                    "canonical_url": original.get_full_url(django_request),
                    "first_published_at": original.first_published_at,
                    "variant": (
                        {"id": served.pk, "title": served.title} if served is not original else None
                    ),
                },
                "visitor": visitor_data(django_request),
                "fields": stream_fields(served, context),
            }
        )
