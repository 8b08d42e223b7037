"""Building events from requests: what a page view records, and nothing more.

Only the path (never the whole query string, which may carry personal data: only the
parameters that enabled segments' rules name, see :func:`segments.definitions.query_params`),
campaign parameters, the referrer's host, a coarse device class and the country are kept; never
the IP address (a GeoIP lookup, when the site configures one, reads it and forgets it) or the
full user agent. Text taken from the request is made storable (NUL characters and lone
surrogates are removed: a page never fails for them) and email addresses, phone numbers and IP
addresses in it are replaced by placeholders (:mod:`segments.events.text`), before anything
is recorded.
"""

import logging
import re
import threading
import time
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest

from consent.api import client_address

from ..conf import get_setting
from ..definitions import query_params
from . import Event
from .text import redact, storable

logger = logging.getLogger(__name__)

_MOBILE = re.compile(r"Mobi|Android.+Mobile|iPhone|iPod|Windows Phone", re.IGNORECASE)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)|Silk|Kindle", re.IGNORECASE)
_CAMPAIGN_PARAMS = ("utm_source", "utm_medium", "utm_campaign")


# Sec-CH-UA-Platform values whose non-mobile devices (Sec-CH-UA-Mobile: ?0) are tablets.
_TABLET_PLATFORMS = frozenset({"android", "ios", "ipados"})


@lru_cache(maxsize=2048)
def device_class(
    user_agent: str, mobile_hint: str = "", platform_hint: str = "", form_factors: str = ""
) -> str:
    """``"mobile"``, ``"tablet"`` or ``"desktop"``.

    What the browser says of itself wins over the user agent: the form factors client hint
    (``Sec-CH-UA-Form-Factors``, sent to sites that ask for it) when it names a tablet or a
    mobile device; else Chromium's default hints, ``Sec-CH-UA-Mobile: ?1`` (a phone) or ``?0``
    with ``Sec-CH-UA-Platform`` Android or iOS (a tablet: an Android tablet, or a phone asking
    for the desktop site) or another platform (a desktop). Without hints, the user agent. An
    iPad on iPadOS 13 or later sends a desktop Safari user agent and no hints: the request
    cannot tell it from a Mac, and the tracker reports its touch screen instead (a
    ``device_hint`` event: with consent, the visitor's stored device becomes ``tablet``; see
    :meth:`segments.profiles.features.Profile.apply`)."""
    if form_factors:
        factors = form_factors.lower()
        if '"tablet"' in factors:
            return "tablet"
        if '"mobile"' in factors:
            return "mobile"
    if mobile_hint == "?1":
        return "mobile"
    if mobile_hint == "?0":
        platform = platform_hint.strip().strip('"').lower()
        if platform in _TABLET_PLATFORMS:
            return "tablet"
        if platform:
            return "desktop"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


def request_device(meta) -> str:
    """The device class of a request (its ``META``): see :func:`device_class`."""
    return device_class(
        meta.get("HTTP_USER_AGENT", ""),
        meta.get("HTTP_SEC_CH_UA_MOBILE", ""),
        meta.get("HTTP_SEC_CH_UA_PLATFORM", ""),
        meta.get("HTTP_SEC_CH_UA_FORM_FACTORS", ""),
    )


def is_bot(request: HttpRequest) -> bool:
    """Whether the request's user agent matches ``SEGMENTS_BOT_USER_AGENTS`` (crawlers,
    headless browsers, HTTP libraries): such requests are never recorded."""
    pattern = get_setting("SEGMENTS_BOT_USER_AGENTS")
    if not pattern:
        return False
    return _is_bot_agent(pattern, request.META.get("HTTP_USER_AGENT", ""))


@lru_cache(maxsize=2048)
def _is_bot_agent(pattern: str, user_agent: str) -> bool:
    return re.search(pattern, user_agent, re.IGNORECASE) is not None


def is_page_view(request: HttpRequest) -> bool:
    """Whether this request is a page view worth recording (before knowing the response)."""
    if request.method != "GET" or is_bot(request):
        return False
    path = request.path_info
    return not any(path.startswith(p) for p in get_setting("SEGMENTS_EXCLUDED_PATH_PREFIXES"))


def request_context(request: HttpRequest) -> dict[str, str]:
    """What the request itself says about the visitor: used for context-only segments without
    consent (and forgotten after the request), and recorded with page views with consent.

    ``query`` holds only the query parameters that enabled segments' rules name (as a query
    string, values redacted like all text), never the rest of the query string; the rules of
    context-only segments read the whole query string in the request itself
    (:func:`segments.definitions.context_segments`)."""
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
        watched = query_params()
        if watched:
            query = _watched_query(request, watched)
            if query:
                context["query"] = query
    context["device"] = request_device(meta)
    language = getattr(request, "LANGUAGE_CODE", None) or _accept_language(
        meta.get("HTTP_ACCEPT_LANGUAGE", "")
    )
    if language:
        context["language"] = language
    country = request_country(request)
    if country:
        context["country"] = country
    return context


MAX_QUERY = 400  # characters of the recorded parameters (a page view holds 512 per property)


def _watched_query(request: HttpRequest, watched: frozenset[str]) -> str:
    """The request's values of the parameters rules name, as a query string (sorted)."""
    pairs = []
    for param in sorted(watched):
        value = request.GET.get(param)
        if value is not None:
            pairs.append((param, _text(value[:100])))
    return urlencode(pairs)[:MAX_QUERY] if pairs else ""


# -- country ----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _meta_names(headers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("HTTP_" + h.strip().upper().replace("-", "_") for h in headers if h)


def _code(value: str) -> str | None:
    code = value.strip().upper()
    # "XX": Cloudflare's unknown country; "T1" (Tor) is not alphabetic.
    return code if len(code) == 2 and code.isalpha() and code != "XX" else None


def request_country(request: HttpRequest) -> str | None:
    """The visitor's country as an ISO 3166 code: from the first of ``SEGMENTS_COUNTRY_HEADER``
    (a CDN's header: Cloudflare's ``CF-IPCountry`` and CloudFront's
    ``CloudFront-Viewer-Country`` by default) that holds one; else, when Django's
    ``GEOIP_PATH`` is set, from that GeoIP2 database. The address is only looked up, never
    kept or logged."""
    headers = get_setting("SEGMENTS_COUNTRY_HEADER")
    if headers:
        meta = request.META
        for name in _meta_names((headers,) if isinstance(headers, str) else tuple(headers)):
            value = meta.get(name)
            if value:
                code = _code(value)
                if code:
                    return code
    if getattr(settings, "GEOIP_PATH", None):
        return _geoip_country(request)
    return None


_geoip_lock = threading.Lock()
_geoip: list = []  # [reader] once opened, [None] when it cannot be (logged once)


@receiver(setting_changed)
def _forget_geoip(setting=None, **kwargs) -> None:
    if setting in ("GEOIP_PATH", "GEOIP_COUNTRY"):
        _geoip.clear()


def _geoip_reader():
    if not _geoip:
        with _geoip_lock:
            if not _geoip:
                try:
                    from django.contrib.gis.geoip2 import GeoIP2  # needs the geoip2 package

                    reader = GeoIP2()
                except Exception as exc:  # not installed, no database at GEOIP_PATH...
                    logger.warning(
                        "GEOIP_PATH is set but no GeoIP2 database can be opened (%s): the "
                        "country comes from CDN headers only",
                        type(exc).__name__,
                    )
                    reader = None
                _geoip.append(reader)
    return _geoip[0]


def _geoip_country(request: HttpRequest) -> str | None:
    reader = _geoip_reader()
    address = client_address(request) if reader is not None else ""
    if not address:
        return None
    try:
        return _code(reader.country_code(address) or "")
    except Exception:  # an address the database does not hold, a private one, a malformed one
        return None


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
    # The Wagtail page served (the canonical page of a page variant), set by cms_blocks before
    # the page is served: experiments count the exposure from it (experiments.pipeline).
    page = getattr(request, "_tailored_page_id", None)
    if page is not None:
        properties["page"] = page
    return Event(visitor_key=visitor_key, name="page_view", ts=time.time(), properties=properties)
