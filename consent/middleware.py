from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

from . import cookies
from .actions import honour_gpc
from .conf import get_setting
from .policy import apply_privacy_signals


class ConsentMiddleware:
    """Verify the consent cookie once per request and keep the result on ``request.consent``.

    A Global Privacy Control signal narrows the visitor's purposes for the request; the first
    time it takes away purposes they had granted, that is recorded and the cookie updated.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        claimed = cookies.read(request)
        effective = claimed
        if claimed.purposes and cookies.privacy_signal(request):
            effective = apply_privacy_signals(
                claimed, gpc=True, gpc_purposes=frozenset(get_setting("CONSENT_GPC_PURPOSES"))
            )
        request.consent = effective
        response = self.get_response(request)
        if effective is not claimed and not getattr(request, "consent_decided", False):
            decision = honour_gpc(claimed, effective, language=get_language() or "")
            cookies.write(response, decision.state)
            cookies.delete(response, decision.delete_cookies)
        return response
