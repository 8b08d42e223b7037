"""Signal handlers the consent app wires up in ``ready()``."""

import logging
import threading
from functools import partial

from cookie_consent.models import CookieGroup
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from .conf import get_setting
from .identity import user_key
from .models import ChainHead, IdentityLink
from .notices import publish
from .policy import UNDECIDED
from .tasks import process_erasure

logger = logging.getLogger(__name__)

_quiet = threading.local()

PURPOSE_NAMES = {
    "necessary": (
        "Strictly necessary",
        "Needed for the site to work, such as security and "
        "remembering your privacy choices. Always on.",
    ),
    "analytics": ("Analytics", "Counting visits to understand how the site is used."),
    "personalization": ("Personalization", "Remembering what you view to adapt content to you."),
    "marketing": ("Marketing", "Measuring and personalising advertising."),
}


def ensure_setup(sender=None, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    """After migrate: the chain head exists and every configured purpose has a cookie group."""
    ChainHead.objects.using(using).get_or_create(pk=1)
    _quiet.active = True  # one notice for the whole set-up, not one per purpose
    try:
        _ensure_groups(CookieGroup, using, get_setting("CONSENT_PURPOSES"))
    finally:
        _quiet.active = False


def _ensure_groups(CookieGroup, using, purposes) -> None:
    for order, code in enumerate(purposes):
        name, description = PURPOSE_NAMES.get(code, (code.capitalize(), ""))
        CookieGroup.objects.using(using).get_or_create(
            varname=code,
            defaults={
                "name": name,
                "description": description,
                "is_required": code == "necessary",
                "is_deletable": code != "necessary",
                "ordering": order,
            },
        )


def purposes_changed(sender, raw=False, **kwargs) -> None:
    """A purpose or a cookie behind it changed: publish a new notice version."""
    if raw or getattr(_quiet, "active", False):
        return
    transaction.on_commit(publish)


def link_user(sender, request, user, **kwargs) -> None:
    """A consenting visitor logs in: link the account to their profile (both keyed hashes)."""
    state = getattr(request, "consent", UNDECIDED)  # what the middleware verified
    purpose = get_setting("CONSENT_LINK_PURPOSE")
    if state.visitor_key is None or not state.allows(purpose) or user is None:
        return
    IdentityLink.objects.get_or_create(user_key=user_key(user.pk), visitor_key=state.visitor_key)


def erasure_requested(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A new erasure request: tell a worker once the request is committed (at its due time).
    A broker failure is logged, not raised: the beat sweep runs due erasures anyway."""
    if not created or raw:
        return
    transaction.on_commit(partial(_enqueue_erasure, instance.pk, instance.due_at))


def _enqueue_erasure(pk: int, due_at) -> None:
    countdown = max((due_at - timezone.now()).total_seconds(), 0.0)
    try:
        process_erasure.apply_async((pk,), countdown=countdown)
    except Exception as exc:
        logger.warning("Could not enqueue erasure %s: %s", pk, type(exc).__name__)
