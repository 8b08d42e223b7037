"""Builders for the editor tests: users with exactly the permissions a test names, and
consenting visitors whose events go through the real pipeline."""

import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from consent.api import notice_version
from segments.api import mirror_consent, record_events
from segments.stream import drain as pipeline

XSS = "<script>alert(1)</script>"


def permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def user(username: str, *perms: str, superuser: bool = False):
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "x")
    account = User.objects.create_user(username, password="x", is_staff=True)
    group = Group.objects.create(name=f"{username} group")
    group.permissions.add(permission("wagtailadmin.access_admin"), *(permission(p) for p in perms))
    account.groups.add(group)
    return account


def login(username: str, *perms: str, superuser: bool = False) -> Client:
    client = Client()
    client.force_login(user(username, *perms, superuser=superuser))
    return client


def consent(*keys: str) -> None:
    for key in keys:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)


def visit(key: str, *items) -> None:
    """Record events (name, properties) for a consenting visitor and drain them."""
    record_events(key, [(name, props, None) for name, props in items])
    pipeline.drain_partition(pipeline.get_backend().partition_for(key))
