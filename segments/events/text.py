"""Free text on its way to storage: what PostgreSQL cannot store, and personal data (pure).

Two checks run on every string an event carries, in every intake path (the client endpoint,
``track()``/``record_events``, page views built by the middleware, and imports):

- :func:`unstorable` names what the durable log cannot hold: a NUL character (refused by
  PostgreSQL in text and in ``jsonb``) and lone surrogates (not encodable in UTF-8). An event
  carrying one must never reach the stream, where it would fail the log write on every retry.
- :func:`redact` replaces email addresses, phone numbers and IP addresses (v4 and v6) by a
  placeholder (``[email]``, ``[phone]``, ``[ip]``). A placeholder, not a keyed hash: no feature
  needs to tell two addresses apart, and a keyed hash would still be personal data (it links
  the visitor to whoever holds the key and the address).

The patterns are deliberately conservative where a false match costs data a feature reads: a
phone number is a ``+`` followed by 8-15 digits, or 9-15 digits written in at least three groups
separated by spaces, dots, dashes or a parenthesised area code ("020 7946 0958",
"(555) 123-4567"); a bare run of digits (an order number) is kept. Dotted quads are replaced
only when they are valid IPv4 addresses, colon-separated groups only when valid IPv6 addresses.
"""

import ipaddress
import re
from functools import lru_cache

EMAIL = "[email]"
PHONE = "[phone]"
IP = "[ip]"

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Percent-encoded "@" (an address copied from a URL) counts as one too.
_EMAIL_ENCODED_RE = re.compile(
    r"[A-Za-z0-9._%+-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.IGNORECASE
)
_IPV4_RE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]|\.\d)")
_IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")
_IPV6_V4_RE = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f:]*:(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
)  # ::ffff:192.0.2.1
_PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().-]{7,22}\d"  # international: + and digits, separators allowed
    r"|(?:\(\d{1,5}\)[\s.-]?|\d{2,5}[\s.-])\d{2,5}(?:[\s.-]\d{2,5}){1,4})(?![\w])"
)
# A quick pre-check: text without any of these has nothing to redact (an address needs "@" or
# "%40", an IPv6 address ":", an IPv4 address dotted digits, a phone number eight digits).
_TRIGGERS = re.compile(r"[@:]|%40|\d\.\d{1,3}\.\d|(?:\d\D{0,3}){8}")


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored (a short reason), or None if it can."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (a lone surrogate)"
    return None


def storable(value: str) -> str:
    """``value`` with what cannot be stored removed (NUL characters, lone surrogates): for text
    taken from a request, where refusing would fail the page."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "ignore").decode("utf-8")
    return value


def redact(value: str) -> str:
    """``value`` with email addresses, phone numbers and IP addresses replaced by
    placeholders."""
    if len(value) < 3 or not _TRIGGERS.search(value):
        return value
    return _redact(value)


@lru_cache(maxsize=4096)
def _redact(value: str) -> str:
    if "@" in value:
        value = _EMAIL_RE.sub(EMAIL, value)
    if "%40" in value:
        value = _EMAIL_ENCODED_RE.sub(EMAIL, value)
    if ":" in value:
        value = _IPV6_V4_RE.sub(_ipv6, value)
        value = _IPV6_RE.sub(_ipv6, value)
    if "." in value:
        value = _IPV4_RE.sub(_ipv4, value)
    return _PHONE_RE.sub(_phone, value)


def _ipv4(match: re.Match) -> str:
    try:
        ipaddress.IPv4Address(match.group())
    except ValueError:
        return match.group()
    return IP


def _ipv6(match: re.Match) -> str:
    text = match.group()
    if text.count(":") < 2:
        return text
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return IP


_DATE_RE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _phone(match: re.Match) -> str:
    text = match.group()
    if _DATE_RE.match(text):
        return text  # a date (and time), not a phone number
    digits = sum(c.isdigit() for c in text)
    if text.startswith("+"):
        return PHONE if 8 <= digits <= 15 else text
    return PHONE if 9 <= digits <= 15 else text


__all__ = ["EMAIL", "IP", "PHONE", "redact", "storable", "unstorable"]
