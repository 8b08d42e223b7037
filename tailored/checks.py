"""Helpers for the apps' system checks, and the foundation's own checks (the operations
endpoints' settings)."""

import ipaddress
from collections.abc import Sequence

from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from .conf import get_setting


def subclass_index(class_path: str, candidate_paths: Sequence[str]) -> int:
    """The index in ``candidate_paths`` (e.g. ``MIDDLEWARE``) of ``class_path`` or of a subclass
    of it, or -1: a project may install its own subclass of a middleware. Paths that cannot be
    imported are skipped (Django's own checks report them). As
    ``django.contrib.auth.checks._subclass_index``."""
    cls = import_string(class_path)
    for index, path in enumerate(candidate_paths):
        try:
            candidate = import_string(path)
        except ImportError:
            continue
        if isinstance(candidate, type) and issubclass(candidate, cls):
            return index
    return -1


@register()
def check_metrics_access(app_configs=None, **kwargs) -> list[CheckMessage]:
    """The metrics endpoint's allow-list parses, and its token is long enough to resist
    guessing (docs/operations.md)."""
    messages: list[CheckMessage] = []
    networks = get_setting("TAILORED_METRICS_ALLOWED_IPS")
    bad = []
    for network in networks if isinstance(networks, list | tuple) else [networks]:
        try:
            ipaddress.ip_network(network, strict=False)
        except (TypeError, ValueError):
            bad.append(network)
    if bad:
        messages.append(
            Error(
                "TAILORED_METRICS_ALLOWED_IPS must be a list of addresses or networks.",
                hint=f"Not an address or network: {bad!r} (e.g. '10.0.0.0/8', '127.0.0.1').",
                id="tailored.E001",
            )
        )
    token = get_setting("TAILORED_METRICS_TOKEN")
    if token and len(str(token)) < 32:
        messages.append(
            Warning(
                "TAILORED_METRICS_TOKEN is shorter than 32 characters.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="tailored.W001",
            )
        )
    return messages
