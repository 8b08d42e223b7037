"""Django's admin (``/django-admin/``) shows privacy data only to holders of the privacy
permission, as the Wagtail privacy screens do: Django's default ``view_*`` permission on a model
is not enough for any model of the suite whose rows are about visitors."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from consent.actions import record_decision
from consent.models import ConsentRecord, ErasureRequest, Notice
from consent.policy import UNDECIDED
from tests.support.first_party import first_party_apps

pytestmark = pytest.mark.django_db

PRIVACY = ("consent", "view_consent_log")


def staff(*perms: tuple[str, str]) -> Client:
    user = get_user_model().objects.create_user(
        username=f"staff{len(perms)}", password="x", is_staff=True
    )
    for app_label, codename in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def test_a_staff_user_with_only_the_view_permission_cannot_read_the_consent_log():
    record_decision(UNDECIDED, "accept_all", [])
    key = ConsentRecord.objects.get().visitor_key
    viewer = staff(
        ("consent", "view_consentrecord"),
        ("consent", "view_notice"),
        ("consent", "view_erasurerequest"),
    )
    for url in (
        "/django-admin/consent/consentrecord/",
        f"/django-admin/consent/consentrecord/{ConsentRecord.objects.get().pk}/change/",
        "/django-admin/consent/notice/",
        "/django-admin/consent/erasurerequest/",
    ):
        response = viewer.get(url)
        assert response.status_code == 403, url
        assert key not in response.content.decode()
    index = viewer.get("/django-admin/")
    assert b"consentrecord" not in index.content

    officer = staff(("consent", "view_consentrecord"), PRIVACY)
    listing = officer.get("/django-admin/consent/consentrecord/")
    assert listing.status_code == 200 and key in listing.content.decode()
    # Read-only, whoever asks.
    assert officer.get("/django-admin/consent/consentrecord/add/").status_code == 403


def test_every_model_admin_of_the_suite_requires_more_than_djangos_view_permission(rf):
    """Any model of a first-party app registered in Django's admin whose rows are about
    visitors (a consent model, or one keyed by a visitor or user key): a staff user holding
    every default permission of the suite's models but not the privacy permission sees none."""
    ours = {config.label for config in first_party_apps()}
    user = get_user_model().objects.create_user(username="viewer", password="x", is_staff=True)
    for label in ours:
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label=label))
    user.user_permissions.remove(
        Permission.objects.get(content_type__app_label=PRIVACY[0], codename=PRIVACY[1])
    )
    user = get_user_model().objects.get(pk=user.pk)  # no cached permissions
    request = rf.get("/django-admin/")
    request.user = user

    def about_visitors(model) -> bool:
        fields = {f.name for f in model._meta.get_fields()}
        return model._meta.app_label == "consent" or bool(
            fields & {"visitor_key", "user_key", "visitor_id"}
        )

    registered = [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in ours and about_visitors(model)
    ]
    assert {Notice, ConsentRecord, ErasureRequest} <= {model for model, _ in registered}
    for model, model_admin in registered:
        assert not model_admin.has_view_permission(request), model
        assert not model_admin.has_module_permission(request), model
