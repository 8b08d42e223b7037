"""Building events from requests: what a page view records, and nothing more.

Only the path (never the query string, which may carry personal data), campaign parameters,
the referrer's host and a coarse device class are kept; never the IP address or the full user
agent. Text taken from the request is made storable (NUL characters and lone surrogates are
removed: a page never fails for them) and email addresses, phone numbers and IP addresses in it
are replaced by placeholders (:mod:`segments.events.text`), before anything is recorded.
"""

import re
import time
from functools import lru_cache
from urllib.parse import urlsplit

from django.http import HttpRequest

from ..conf import get_setting
from . import Event
from .text import redact, storable

_MOBILE = re.compile(r"Mobi|Android.+Mobile|iPhone|iPod|Windows Phone", re.IGNORECASE)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)|Silk|Kindle", re.IGNORECASE)
_BOT = re.compile(
    r"bot\b|crawler|spider|slurp|headlesschrome|lighthouse|curl/|wget/|python-requests|httpx",
    re.IGNORECASE,
)
_CAMPAIGN_PARAMS = ("utm_source", "utm_medium", "utm_campaign")


@lru_cache(maxsize=2048)
def device_class(user_agent: str) -> str:
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


def is_bot(request: HttpRequest) -> bool:
    return _is_bot_agent(request.META.get("HTTP_USER_AGENT", ""))


@lru_cache(maxsize=2048)
def _is_bot_agent(user_agent: str) -> bool:
    return bool(_BOT.search(user_agent))


def is_page_view(request: HttpRequest) -> bool:
    """Whether this request is a page view worth recording (before knowing the response)."""
    if request.method != "GET" or is_bot(request):
        return False
    path = request.path_info
    return not any(path.startswith(p) for p in get_setting("SEGMENTS_EXCLUDED_PATH_PREFIXES"))


def request_context(request: HttpRequest) -> dict[str, str]:
    """What the request itself says about the visitor: used for context-only segments without
    consent (and forgotten after the request), and recorded with page views with consent."""
    # Read from META, not request.headers: building that mapping costs more than all of this.
    meta = request.META
    context: dict[str, str] = {"path": _path(request.path)[:200]}
    referrer = meta.get("HTTP_REFERER")
    if referrer:
        host = _referrer_host(referrer)
        if host and host != request.get_host().split(":")[0]:
            context["referrer"] = host
    if meta.get("QUERY_STRING"):
        for param in _CAMPAIGN_PARAMS:
            value = request.GET.get(param)
            if value:
                value = _text(value[:100])
                if value:
                    context[param] = value
    context["device"] = device_class(meta.get("HTTP_USER_AGENT", ""))
    language = getattr(request, "LANGUAGE_CODE", None) or _accept_language(
        meta.get("HTTP_ACCEPT_LANGUAGE", "")
    )
    if language:
        context["language"] = language
    header = get_setting("SEGMENTS_COUNTRY_HEADER")
    if header:
        country = meta.get("HTTP_" + header.upper().replace("-", "_"), "").strip().upper()
        if len(country) == 2 and country.isalpha():
            context["country"] = country
    return context


@lru_cache(maxsize=1024)
def _referrer_host(referrer: str) -> str | None:
    """The referring site's host name: never its path or query (which may carry anything), and
    an IP address only as a placeholder."""
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return None
    host = _text(host[:255]) if host else None
    return host or None


def _text(value: str) -> str:
    return redact(storable(value)).strip()


@lru_cache(maxsize=2048)
def _path(path: str) -> str:
    return redact(storable(path))


@lru_cache(maxsize=256)
def _accept_language(value: str) -> str | None:
    first = value.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first[:2] if len(first) >= 2 and first[:2].isalpha() else None


def page_view(request: HttpRequest, visitor_key: str, context: dict | None = None) -> Event:
    properties = dict(context if context is not None else request_context(request))
    properties["path"] = _path(request.path)[:512]
    return Event(visitor_key=visitor_key, name="page_view", ts=time.time(), properties=properties)
