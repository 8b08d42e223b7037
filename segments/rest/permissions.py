"""Same-origin check for endpoints that cannot use a CSRF token (beacons send no headers), and
who may look up one visitor."""

from urllib.parse import urlsplit

from rest_framework.permissions import BasePermission

from ..reporting.access import may_view_visitors

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, normalised (lowercase, default port dropped)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


class SameOrigin(BasePermission):
    """Refuse a request that a browser says comes from another origin: an ``Origin`` header
    that is not this site's, or (when there is no Origin) a ``Referer`` from another site, or a
    ``Sec-Fetch-Site`` of ``cross-site``/``same-site``. Requests without any of these (not sent
    by a browser's page) are allowed: they carry no one's cookies by accident.

    Behind a TLS-terminating proxy set ``SECURE_PROXY_SSL_HEADER`` so the scheme is right.
    """

    message = "Cross-origin requests are not accepted."

    def has_permission(self, request, view) -> bool:
        expected = _origin(f"{request.scheme}://{request.get_host()}")
        if request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
            return False
        origin = request.headers.get("Origin")
        if origin is not None:
            return _origin(origin) == expected  # "null" (sandboxed, file:) is refused too
        referer = request.headers.get("Referer")
        if referer:
            return _origin(referer) == expected
        return True


class MayViewVisitors(BasePermission):
    """Staff users (a session of the Wagtail admin) holding a permission that lets them see one
    visitor's features and memberships (:func:`segments.api.may_view_visitors`): editors who
    may see segments, privacy officers. Everyone else is refused."""

    message = "You need staff status and the permission to view segments or the privacy tools."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and may_view_visitors(user))
