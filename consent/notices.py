"""The consent notice: published versions, and the current one (cached briefly per process)."""

import hashlib
import json
import threading
import time

from cookie_consent.models import CookieGroup
from django.core.signals import setting_changed
from django.db import IntegrityError, transaction
from django.dispatch import receiver

from .conf import get_setting
from .models import Notice

_cache: tuple[float, Notice, str] | None = None  # (good until, notice, its version)
_lock = threading.Lock()


def purpose_snapshot() -> list[dict]:
    """The configured purposes with their names, descriptions and cookies, as django-cookie-
    consent's cookie groups declare them (a purpose without a group gets its code as name)."""
    groups = {g.varname: g for g in CookieGroup.objects.prefetch_related("cookie_set")}
    snapshot = []
    for code in get_setting("CONSENT_PURPOSES"):
        group = groups.get(code)
        snapshot.append(
            {
                "code": code,
                "name": group.name if group and group.name else code.capitalize(),
                "description": group.description if group else "",
                "required": bool(group.is_required) if group else code == "necessary",
                "cookies": sorted(
                    f"{c.name}@{c.domain or '*'}{c.path or '/'}" for c in group.cookie_set.all()
                )
                if group
                else [],
            }
        )
    return snapshot


def _hash(banner: str, policy: str, purposes: list[dict]) -> str:
    payload = json.dumps([banner, policy, purposes], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def publish(banner_text: str | None = None, policy_text: str | None = None) -> Notice:
    """Publish a new notice version if the texts or purposes changed; return the current one."""
    global _cache
    latest = Notice.objects.order_by("-version").first()
    banner = (
        banner_text
        if banner_text is not None
        else (latest.banner_text if latest else get_setting("CONSENT_DEFAULT_BANNER_TEXT"))
    )
    policy = (
        policy_text
        if policy_text is not None
        else (latest.policy_text if latest else get_setting("CONSENT_DEFAULT_POLICY_TEXT"))
    )
    purposes = purpose_snapshot()
    text_hash = _hash(banner, policy, purposes)
    if latest is not None and latest.text_hash == text_hash:
        return latest
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                version=(latest.version + 1) if latest else 1,
                banner_text=banner,
                policy_text=policy,
                purposes=purposes,
                text_hash=text_hash,
            )
    except IntegrityError:  # another process published at the same moment
        notice = Notice.objects.order_by("-version").first()
    _cache = None
    return notice


def current() -> Notice:
    """The notice in force. Another process's publication is seen within
    CONSENT_NOTICE_CACHE_SECONDS."""
    return _current()[1]


def current_version() -> str:
    """The version of the notice in force, as consent states record it (every request with a
    consent cookie asks: the cached string, no work)."""
    return _current()[2]


def _current() -> tuple[float, Notice, str]:
    global _cache
    cached = _cache
    if cached is not None and time.monotonic() < cached[0]:
        return cached
    with _lock:
        notice = Notice.objects.order_by("-version").first() or publish()
        ttl = float(get_setting("CONSENT_NOTICE_CACHE_SECONDS"))
        _cache = (time.monotonic() + ttl, notice, str(notice.version))
        return _cache


@receiver(setting_changed, dispatch_uid="consent.notices.forget")
def _setting_changed(setting: str, **kwargs) -> None:
    if setting == "CONSENT_NOTICE_CACHE_SECONDS":  # the cached notice keeps the old lifetime
        forget_cache()


def forget_cache() -> None:
    global _cache
    _cache = None
