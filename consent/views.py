"""The preferences page (a Django view: HTML for a person). The consent endpoints its forms
post to are in :mod:`consent.rest.views`."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import cookies, notices
from .policy import NECESSARY
from .visitor import get_consent


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
