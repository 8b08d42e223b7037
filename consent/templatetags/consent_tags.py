from django import template

from ..api import get_consent
from ..conf import get_setting
from ..policy import NECESSARY

register = template.Library()


@register.inclusion_tag("consent/banner.html", takes_context=True)
def consent_banner(context: template.Context) -> dict:
    """The first-layer banner (until the visitor decides) and the always-present settings link."""
    request = context.get("request")
    state = get_consent(request) if request is not None else None
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "show_banner": state is not None and not state.decided,
        "purposes": [p for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY],
        "granted": state.purposes if state is not None else frozenset(),
        "next": request.get_full_path() if request is not None else "/",
    }


@register.simple_tag(takes_context=True)
def has_consent(context: template.Context, purpose: str) -> bool:
    request = context.get("request")
    return request is not None and get_consent(request).allows(purpose)
