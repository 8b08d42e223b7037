from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import cookies


class ConsentMiddleware:
    """Verify the consent cookie once per request and keep the result on ``request.consent``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.consent = cookies.read(request)
        return self.get_response(request)
