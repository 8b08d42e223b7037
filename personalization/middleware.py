from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .visitor import LazySegments, VisitorContext


class PersonalizationMiddleware:
    """Expose lazy ``request.segments`` and record a consented visitor's page view.

    A consented visitor costs one round trip to the fast store per request (membership read and
    page view recorded together); a visitor without consent costs none. Must come after
    ``consent.middleware.ConsentMiddleware`` (check personalization.E002).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        visitor = VisitorContext(request)
        request.personalization = visitor
        request.segments = LazySegments(visitor)
        response = self.get_response(request)
        visitor.finish(response)
        return response
