import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.views.decorators.http import require_POST

from . import cookies
from .actions import record_decision
from .api import get_consent
from .policy import InvalidChoice

MAX_BODY_BYTES = 4096
MAX_PURPOSES = 32


def _wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    )


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return MAX_BODY_BYTES + 1  # unparseable: treat as oversized


def _parse(request: HttpRequest) -> tuple[str, list[str], str]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidChoice("The body is not valid JSON.") from exc
        if not isinstance(data, dict):
            raise InvalidChoice("The body must be a JSON object.")
        action, purposes, next_url = data.get("action"), data.get("purposes", []), ""
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise InvalidChoice("'purposes' must be a list of purpose names.")
    else:
        action = request.POST.get("action")
        purposes = request.POST.getlist("purposes")
        next_url = request.POST.get("next", "")
    if not isinstance(action, str) or not action:
        raise InvalidChoice("Missing 'action'.")
    if len(purposes) > MAX_PURPOSES:
        raise InvalidChoice("Too many purposes.")
    return action, purposes, next_url


@require_POST
def decide(request: HttpRequest) -> HttpResponse:
    """Record the visitor's choice from the banner or the preferences form."""
    if _content_length(request) > MAX_BODY_BYTES:
        return _error(request, "Request body too large.", status=413)
    try:
        action, purposes, next_url = _parse(request)
        state = record_decision(
            get_consent(request), action, purposes, language=get_language() or ""
        )
    except InvalidChoice as exc:
        return _error(request, str(exc))

    if _wants_json(request):
        response: HttpResponse = JsonResponse({"decided": True, "purposes": sorted(state.purposes)})
    else:
        safe = url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        response = HttpResponseRedirect(next_url if safe and next_url else "/", status=303)
    cookies.write(response, state)
    response["Cache-Control"] = "no-store"
    return response
