from django import template
from django.utils.html import json_script

from .. import notices
from ..api import consent_mode_signals, get_consent
from ..conf import get_setting
from ..policy import NECESSARY, UNDECIDED

register = template.Library()


@register.inclusion_tag("consent/banner.html", takes_context=True)
def consent_banner(context: template.Context) -> dict:
    """The first-layer banner (until the visitor decides) and the always-present settings link.

    With CONSENT_BANNER_MODE = "client" the markup is the same for every visitor (safe in a
    shared page cache) and consent.js fetches the visitor's state to show or hide it.
    """
    request = context.get("request")
    state = get_consent(request) if request is not None else UNDECIDED
    notice = notices.current()
    client_mode = get_setting("CONSENT_BANNER_MODE") == "client"
    return {
        "client_mode": client_mode,
        # Not "csrf_token": inclusion tags copy the page's token under that name.
        "form_token": "" if client_mode else context.get("csrf_token"),
        "show_banner": client_mode or not state.decided,
        "granted": frozenset() if client_mode else state.purposes,
        "purposes": [p for p in notice.purposes if p["code"] != NECESSARY],
        "banner_text": notice.banner_text,
        "next": request.get_full_path() if request is not None else "/",
    }


@register.simple_tag(takes_context=True)
def consent_mode(context: template.Context) -> str:
    """Google Consent Mode v2 signals for the page, as a JSON data block read by consent.js
    (no inline script: strict-CSP friendly). Place it before your Google tags."""
    request = context.get("request")
    client_mode = get_setting("CONSENT_BANNER_MODE") == "client"
    state = UNDECIDED if client_mode or request is None else get_consent(request)
    return json_script(consent_mode_signals(state), "tailored-consent-mode")


@register.simple_tag(takes_context=True)
def has_consent(context: template.Context, purpose: str) -> bool:
    request = context.get("request")
    return request is not None and get_consent(request).allows(purpose)
