"""The consent endpoints: the visitor's decision, their state, their data.

The banner's and the preferences page's forms post here as well as scripts and API clients:
a form post is answered with a redirect (errors as plain text, for the person reading them), a
JSON request with JSON. CSRF is checked as for any form of the site.
"""

import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import cookies, notices
from ..actions import record_decision
from ..conf import get_setting
from ..models import ErasureRequest
from ..policy import ConsentState, InvalidChoice
from ..privacy import erase_visitor, export_csv, export_visitor
from ..standing import honoured
from ..visitor import consent_mode_signals, get_consent
from .base import APIEndpoint
from .errors import JSONForAPIClients, PlainTextErrorRenderer
from .parsers import FormParser, JSONParser, MultiPartParser

MAX_BODY_BYTES = 4096
MAX_PURPOSES = 32
NO_IDENTIFIER = "No data is held about you: you have no identifier."


class ConsentEndpoint(APIEndpoint):
    """An endpoint that browsers reach through forms and links as well as through scripts."""

    renderer_classes = [JSONRenderer, PlainTextErrorRenderer]
    content_negotiation_class = JSONForAPIClients
    max_body_bytes = MAX_BODY_BYTES

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        # DRF exempts its views from Django's CSRF check and leaves it to session
        # authentication, which an anonymous visitor never passes through. These endpoints
        # change the visitor's consent from forms carrying the page's token, so Django's
        # CsrfViewMiddleware checks them like any other form of the site.
        view.csrf_exempt = False
        return view

    def get_throttle_rate(self) -> str | None:
        return get_setting("CONSENT_RATE")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _sent_json(request: Request) -> bool:
    return request._request.content_type == "application/json"


def _form(data) -> QueryDict:
    # A body-less request parses as {} whatever its content type.
    return data if isinstance(data, QueryDict) else QueryDict()


def _choice(request: Request) -> tuple[str, list[str], str]:
    data = request.data
    if _sent_json(request):
        if not isinstance(data, dict):
            raise InvalidChoice("The body must be a JSON object.")
        action, purposes, next_url = data.get("action"), data.get("purposes", []), ""
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise InvalidChoice("'purposes' must be a list of purpose names.")
    else:
        form = _form(data)
        action = form.get("action")
        purposes = form.getlist("purposes")
        next_url = form.get("next", "")
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


class DecideView(ConsentEndpoint):
    """Record the visitor's choice from the banner, the preferences page or the API.

    A form (``action``, ``purposes``, ``next``) is answered with a redirect to ``next``; JSON
    (``{"action", "purposes"}``) with the new state.
    """

    http_method_names = ["post"]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_scope = "consent_decide"

    def post(self, request: Request) -> HttpResponse:
        django_request = request._request
        try:
            action, purposes, next_url = _choice(request)
            decision = record_decision(
                get_consent(django_request),
                action,
                purposes,
                language=get_language() or "",
                gpc=cookies.privacy_signal(django_request),
                via="api" if _sent_json(request) else "form",
            )
        except InvalidChoice as exc:
            raise ValidationError(str(exc)) from exc

        django_request.consent_decided = True
        if request.accepted_renderer.format == "json":
            response: HttpResponse = Response(_state_json(decision.state))
        else:
            response = _redirect(django_request, next_url)
        cookies.write(response, decision.state)
        cookies.delete(response, decision.delete_cookies)
        return response


@method_decorator(never_cache, name="dispatch")
class StateView(ConsentEndpoint):
    """The visitor's consent state (for pages served from a shared cache) and a CSRF token."""

    http_method_names = ["get"]
    renderer_classes = [JSONRenderer]  # read by consent.js only: JSON, errors too
    throttle_scope = "consent_state"

    def get(self, request: Request) -> Response:
        current = get_consent(request._request)
        return Response({**_state_json(current), "csrf_token": get_token(request._request)})


@method_decorator(never_cache, name="dispatch")
class MyDataView(ConsentEndpoint):
    """Download everything held about the visitor; their signed cookie proves it is theirs."""

    http_method_names = ["get"]
    throttle_scope = "consent_export"

    def get(self, request: Request) -> HttpResponse:
        current = get_consent(request._request)
        # Asked of the database, not the cache: an old copy of the cookie (withdrawn or
        # decided again since) downloads nothing.
        if current.visitor_key is None or not honoured(current, fresh=True):
            raise NotFound(NO_IDENTIFIER)
        key = current.visitor_key
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ValidationError("Unknown format: use json or csv.")
        data = export_visitor(key)
        if fmt == "csv":
            response = HttpResponse(export_csv(data), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(
                json.dumps(data, indent=2, default=str), content_type="application/json"
            )
        response["Content-Disposition"] = f'attachment; filename="my-data.{fmt}"'
        return response


class EraseMyDataView(ConsentEndpoint):
    """Erase everything held about the visitor, and forget their identifier."""

    http_method_names = ["post"]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_scope = "consent_erase"

    def post(self, request: Request) -> HttpResponse:
        django_request = request._request
        current = get_consent(django_request)
        if current.visitor_key is None:
            raise NotFound(NO_IDENTIFIER)
        next_url = _form(request.data).get("next", "")  # read (and refused) before erasing
        erase_visitor(current.visitor_key, reason=ErasureRequest.Reason.VISITOR)
        django_request.consent_decided = True
        response = _redirect(django_request, next_url, default="/")
        cookies.write(
            response,
            ConsentState(decided=True, notice_version=str(notices.current().version)),
        )
        return response
