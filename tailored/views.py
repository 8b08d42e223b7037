"""Operations endpoints: liveness, readiness and the Prometheus metrics (docs/operations.md).

Plain Django views: no session, no consent, no throttle, nothing recorded (JSON and text
responses are never page views, and their path prefix belongs in
``SEGMENTS_EXCLUDED_PATH_PREFIXES``). Their bodies carry no personal data."""

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health, metrics


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    """The process answers. Consults nothing else, on purpose."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """Every critical dependency answers: 200, or 503 with the checks that failed."""
    ok, checks = health.readiness()
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


@never_cache
@require_safe
def prometheus(request: HttpRequest) -> HttpResponse:
    """The metrics, for a scrape with the token or from an allowed address; otherwise 404 (off,
    or not for this client: an outsider learns nothing, not even that it exists)."""
    if not metrics.allowed(
        request.headers.get("Authorization", ""), request.META.get("REMOTE_ADDR", "")
    ):
        raise Http404
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
