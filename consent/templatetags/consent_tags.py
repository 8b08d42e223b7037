from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils.html import escape, json_script
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from .. import notices
from ..conf import get_setting
from ..policy import NECESSARY, UNDECIDED
from ..visitor import consent_mode_signals, get_consent

register = template.Library()


# Rendered banner markup by (language, notice version, client mode, decided): page views
# need no template rendering for the banner, only two escaped substitutions.
_markup: dict[tuple, str] = {}


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
    key = (get_language() or "", notice.version, client_mode, state.decided and not client_mode)
    markup = _markup.get(key)
    if markup is None:
        # Rendered once per language, notice version and kind of visitor, with placeholders
        # where the page's CSRF token and address go.
        markup = _markup[key] = render_to_string(
            "consent/banner.html",
            {
                "client_mode": client_mode,
                "form_token": "" if client_mode else _TOKEN_SLOT,
                "show_banner": client_mode or not state.decided,
                "purposes": [p for p in notice.purposes if p["code"] != NECESSARY],
                "banner_text": notice.banner_text,
                "next": _NEXT_SLOT,
            },
        )
    if _TOKEN_SLOT in markup:
        # Only in server mode: reading the token sets the CSRF cookie, which would make the
        # page unshareable in a cache (client mode fetches it instead).
        token = context.get("csrf_token")
        markup = markup.replace(_TOKEN_SLOT, escape(str(token)) if token else "")
    if _NEXT_SLOT in markup:
        markup = markup.replace(
            _NEXT_SLOT, escape(request.get_full_path()) if request is not None else "/"
        )
    return mark_safe(markup)  # noqa: S308 - template output; the two values are escaped


_TOKEN_SLOT = "__tailored_csrf_token__"  # noqa: S105 - a placeholder, not a secret
_NEXT_SLOT = "__tailored_next_url__"


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
    _markup.clear()
    _signal_markup.clear()
