"""Building events from requests: what a page view records, and nothing more.

Only the path (never the query string, which may carry personal data), campaign parameters,
the referrer's host and a coarse device class are kept; never the IP address or the full user
agent.
"""

import re
import time
from urllib.parse import urlsplit

from django.http import HttpRequest

from .conf import get_setting
from .events import Event

_MOBILE = re.compile(r"Mobi|Android.+Mobile|iPhone|iPod|Windows Phone", re.IGNORECASE)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)|Silk|Kindle", re.IGNORECASE)
_BOT = re.compile(
    r"bot\b|crawler|spider|slurp|headlesschrome|lighthouse|curl/|wget/|python-requests|httpx",
    re.IGNORECASE,
)
_CAMPAIGN_PARAMS = ("utm_source", "utm_medium", "utm_campaign")


def device_class(user_agent: str) -> str:
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


def is_bot(request: HttpRequest) -> bool:
    return bool(_BOT.search(request.headers.get("User-Agent", "")))


def is_page_view(request: HttpRequest) -> bool:
    """Whether this request is a page view worth recording (before knowing the response)."""
    if request.method != "GET" or is_bot(request):
        return False
    path = request.path_info
    return not any(path.startswith(p) for p in get_setting("SEGMENTS_EXCLUDED_PATH_PREFIXES"))


def page_view(request: HttpRequest, visitor_key: str) -> Event:
    properties: dict[str, str] = {"path": request.path[:512]}
    referrer = request.headers.get("Referer")
    if referrer:
        host = urlsplit(referrer).hostname
        if host and host != request.get_host().split(":")[0]:
            properties["referrer"] = host[:255]
    for param in _CAMPAIGN_PARAMS:
        value = request.GET.get(param)
        if value:
            properties[param] = value[:100]
    properties["device"] = device_class(request.headers.get("User-Agent", ""))
    return Event(visitor_key=visitor_key, name="page_view", ts=time.time(), properties=properties)
