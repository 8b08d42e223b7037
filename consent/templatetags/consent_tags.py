from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils.html import json_script
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from .. import notices
from ..api import consent_mode_signals, get_consent
from ..conf import get_setting
from ..policy import NECESSARY, UNDECIDED

register = template.Library()


# Rendered markup for visitors who already decided (the same for all of them), by language
# and notice version: most page views need no template rendering for the banner at all.
_decided_markup: dict[tuple[str, int], str] = {}


@register.simple_tag(takes_context=True)
def consent_banner(context: template.Context) -> str:
    """The first-layer banner (until the visitor decides) and the always-present settings link.

    With CONSENT_BANNER_MODE = "client" the markup is the same for every visitor (safe in a
    shared page cache) and consent.js fetches the visitor's state to show or hide it.
    """
    request = context.get("request")
    state = get_consent(request) if request is not None else UNDECIDED
    notice = notices.current()
    client_mode = get_setting("CONSENT_BANNER_MODE") == "client"
    if state.decided and not client_mode:
        key = (get_language() or "", notice.version)
        markup = _decided_markup.get(key)
        if markup is None:
            markup = _decided_markup[key] = render_to_string(
                "consent/banner.html", {"show_banner": False}
            )
        return mark_safe(markup)  # noqa: S308 - our own template, no visitor data in it
    return mark_safe(  # noqa: S308 - rendered by the template engine, which escapes
        render_to_string(
            "consent/banner.html", _banner_context(context, request, state, notice, client_mode)
        )
    )


def _banner_context(context, request, state, notice, client_mode) -> dict:
    return {
        "client_mode": client_mode,
        # The page's CSRF token, under another name than the template variable Django sets.
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
    markup = _signal_markup.get(state.purposes)
    if markup is None:
        markup = _signal_markup[state.purposes] = json_script(
            consent_mode_signals(state), "tailored-consent-mode"
        )
    return markup


_signal_markup: dict[frozenset[str], str] = {}


@register.simple_tag(takes_context=True)
def has_consent(context: template.Context, purpose: str) -> bool:
    request = context.get("request")
    return request is not None and get_consent(request).allows(purpose)


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    _decided_markup.clear()
    _signal_markup.clear()
