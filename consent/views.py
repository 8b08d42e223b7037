import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import cookies, notices, ratelimit
from .actions import record_decision
from .api import consent_mode_signals, get_consent
from .models import ErasureRequest
from .policy import NECESSARY, ConsentState, InvalidChoice
from .privacy import erase_visitor, export_csv, export_visitor

MAX_BODY_BYTES = 4096
MAX_PURPOSES = 32


def _wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    )


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    if _wants_json(request):
        response: HttpResponse = JsonResponse({"error": message}, status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


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


def _redirect(request: HttpRequest, next_url: str, default: str = "/") -> HttpResponse:
    safe = url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return HttpResponseRedirect(next_url if safe and next_url else default, status=303)


def _state_json(state: ConsentState) -> dict:
    return {
        "decided": state.decided,
        "purposes": sorted(state.purposes),
        "notice_version": str(notices.current().version),
        "consent_mode": consent_mode_signals(state),
    }


@require_POST
def decide(request: HttpRequest) -> HttpResponse:
    """Record the visitor's choice from the banner, the preferences page or the API."""
    if _content_length(request) > MAX_BODY_BYTES:
        return _error(request, "Request body too large.", status=413)
    if not ratelimit.allow(request, "decide"):
        return _error(request, "Too many requests; try again in a minute.", status=429)
    try:
        action, purposes, next_url = _parse(request)
        if request.content_type == "application/json" and action == "custom":
            action = "api"
        decision = record_decision(
            get_consent(request),
            action,
            purposes,
            language=get_language() or "",
            gpc=cookies.privacy_signal(request),
        )
    except InvalidChoice as exc:
        return _error(request, str(exc))

    request.consent_decided = True
    if _wants_json(request):
        response: HttpResponse = JsonResponse(_state_json(decision.state))
    else:
        response = _redirect(request, next_url)
    cookies.write(response, decision.state)
    cookies.delete(response, decision.delete_cookies)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_GET
def state(request: HttpRequest) -> HttpResponse:
    """The visitor's consent state (for pages served from a shared cache) and a CSRF token."""
    if not ratelimit.allow(request, "state"):
        return _error(request, "Too many requests; try again in a minute.", status=429)
    current = get_consent(request)
    return JsonResponse({**_state_json(current), "csrf_token": get_token(request)})


@never_cache
@require_GET
def preferences(request: HttpRequest) -> HttpResponse:
    """Change or withdraw consent, download or erase one's data."""
    current = get_consent(request)
    notice = notices.current()
    purposes = [p for p in notice.purposes if p["code"] != NECESSARY]
    for purpose in purposes:
        purpose["granted"] = purpose["code"] in current.purposes
    return render(
        request,
        "consent/preferences.html",
        {
            "notice": notice,
            "purposes": purposes,
            "necessary": [p for p in notice.purposes if p["code"] == NECESSARY],
            "consent": current,
            "gpc": cookies.privacy_signal(request),
        },
    )


@never_cache
@require_GET
def my_data(request: HttpRequest) -> HttpResponse:
    """Download everything held about the visitor; their signed cookie proves it is theirs."""
    if not ratelimit.allow(request, "export"):
        return _error(request, "Too many requests; try again in a minute.", status=429)
    key = get_consent(request).visitor_key
    if key is None:
        return _error(request, "No data is held about you: you have no identifier.", status=404)
    fmt = request.GET.get("format", "json")
    if fmt not in ("json", "csv"):
        return _error(request, "Unknown format: use json or csv.")
    data = export_visitor(key)
    if fmt == "csv":
        response = HttpResponse(export_csv(data), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(
            json.dumps(data, indent=2, default=str), content_type="application/json"
        )
    response["Content-Disposition"] = f'attachment; filename="my-data.{fmt}"'
    return response


@require_POST
def erase_my_data(request: HttpRequest) -> HttpResponse:
    """Erase everything held about the visitor, and forget their identifier."""
    if not ratelimit.allow(request, "erase"):
        return _error(request, "Too many requests; try again in a minute.", status=429)
    current = get_consent(request)
    if current.visitor_key is None:
        return _error(request, "No data is held about you: you have no identifier.", status=404)
    erase_visitor(current.visitor_key, reason=ErasureRequest.Reason.VISITOR)
    request.consent_decided = True
    response = _redirect(request, request.POST.get("next", ""), default="/")
    cookies.write(
        response,
        ConsentState(decided=True, notice_version=str(notices.current().version)),
    )
    response["Cache-Control"] = "no-store"
    return response
