"""The cookie inventory (django-cookie-consent's cookie groups and cookies): which cookies
belong to which purpose, and what a valid entry is.

An entry the response cannot carry (a name that is not an RFC 6265 token, a path or domain
that would break the ``Set-Cookie`` header) is refused where the inventory is edited (the
validators below, added to django-cookie-consent's fields in ``ready()``), and skipped where
cookies are deleted: a decision is never refused, nor half-written, because of one bad entry.
"""

import logging
import re

from cookie_consent.models import Cookie
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import notices
from .policy import NECESSARY

logger = logging.getLogger(__name__)

# RFC 6265 section 4.1.1: cookie-name = token (RFC 2616: any CHAR but controls and separators).
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A Path attribute value: any CHAR but controls and ";" (we also require it to start with "/").
_PATH_RE = re.compile(r"/[\x20-\x3a\x3c-\x7e]*\Z")
# A Domain attribute value: a host name, optionally with a leading dot.
_DOMAIN_RE = re.compile(
    r"\.?[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\Z"
)


def cookie_problem(name: str, path: str = "/", domain: str = "") -> str | None:
    """Why a response cannot set or delete this cookie, or ``None`` if it can."""
    if not isinstance(name, str) or not _TOKEN_RE.match(name):
        return f"{name!r} is not a valid cookie name"
    if path and not _PATH_RE.match(path):
        return f"{path!r} is not a valid cookie path"
    if domain and not _DOMAIN_RE.match(domain):
        return f"{domain!r} is not a valid cookie domain"
    return None


def validate_cookie_name(value: str) -> None:
    if not isinstance(value, str) or not _TOKEN_RE.match(value):
        raise ValidationError(
            _(
                "Enter a cookie name as browsers accept it: letters, digits and "
                "!#$%%&'*+-.^_`|~, without spaces, quotes or any of ()<>@,;:\\/[]?={}."
            ),
            code="invalid_cookie_name",
        )


def validate_cookie_path(value: str) -> None:
    if value and not _PATH_RE.match(value):
        raise ValidationError(
            _("Enter a path starting with '/', without ';' or control characters."),
            code="invalid_cookie_path",
        )


def validate_cookie_domain(value: str) -> None:
    if value and not _DOMAIN_RE.match(value):
        raise ValidationError(
            _("Enter a host name such as example.com or .example.com."),
            code="invalid_cookie_domain",
        )


_VALIDATORS = {
    "name": validate_cookie_name,
    "path": validate_cookie_path,
    "domain": validate_cookie_domain,
}


def install_validators() -> None:
    """Validate the inventory's cookie fields wherever a model form or ``full_clean()`` edits
    them (Django's admin, any form of the site). The model is django-cookie-consent's, so the
    validators are added to its fields rather than declared on them."""
    for field_name, validator in _VALIDATORS.items():
        field = Cookie._meta.get_field(field_name)
        if validator not in field.validators:
            field.validators.append(validator)  # the field's cached list: every form sees it


def cookies_outside(granted: frozenset[str]) -> list[tuple[str, str, str]]:
    """(name, path, domain) of the cookies the inventory declares under any purpose other than
    ``granted`` and ``necessary``: the cookies a visitor granting only ``granted`` must not
    keep. Entries a response could not carry are left out (and logged)."""
    rows = Cookie.objects.exclude(cookiegroup__varname__in={*granted, NECESSARY}).values_list(
        "name", "path", "domain"
    )
    found = []
    for name, path, domain in rows:
        problem = cookie_problem(name, path or "/", domain or "")
        if problem:
            logger.warning("Cookie inventory entry skipped: %s", problem)
            continue
        found.append((name, path or "/", domain or ""))
    return found


# The inventory as the notice in force declares it, by purpose: (the notice's hash, {purpose:
# [(name, path, domain)]}). Every change of the inventory publishes a new notice, so this
# follows it within CONSENT_NOTICE_CACHE_SECONDS, and a request reads it without a query.
_declared: tuple[str, dict[str, list[tuple[str, str, str]]]] | None = None


def declared_cookies() -> dict[str, list[tuple[str, str, str]]]:
    """The cookies the notice in force declares under each optional purpose."""
    global _declared
    notice = notices.current()
    version = notice.text_hash  # the texts and the purposes with their cookies
    cached = _declared
    if cached is not None and cached[0] == version:
        return cached[1]
    by_purpose: dict[str, list[tuple[str, str, str]]] = {}
    for purpose in notice.purposes or []:
        code = purpose.get("code") if isinstance(purpose, dict) else None
        if not code or code == NECESSARY:
            continue
        entries = []
        for entry in purpose.get("cookies") or []:
            parsed = _parse_snapshot_entry(entry)
            if parsed is not None and cookie_problem(*parsed) is None:
                entries.append(parsed)
        by_purpose[code] = entries
    _declared = (version, by_purpose)
    return by_purpose


def _parse_snapshot_entry(entry: object) -> tuple[str, str, str] | None:
    """``name@domain/path`` as :func:`consent.notices.purpose_snapshot` writes it (``*`` for
    no domain) back into (name, path, domain)."""
    if not isinstance(entry, str) or "@" not in entry:
        return None
    name, _, rest = entry.rpartition("@")
    slash = rest.find("/")
    domain, path = (rest, "/") if slash == -1 else (rest[:slash], rest[slash:])
    return name, path or "/", "" if domain == "*" else domain


def stray_cookies(present, granted: frozenset[str]) -> list[tuple[str, str, str]]:
    """Of the cookies a request carries (``present``: its cookie names), those the inventory
    declares under a purpose not in ``granted``: a browser keeps a purpose's cookies after the
    consent cookie itself expired, or was never given; they are deleted like a withdrawal's."""
    if not present:
        return []
    return [
        cookie
        for purpose, cookies in declared_cookies().items()
        if purpose not in granted
        for cookie in cookies
        if cookie[0] in present
    ]
