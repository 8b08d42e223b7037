"""The "Channels" menu of the Wagtail admin: destinations and the delivery log, for users with
``tailored_channels.manage_destinations`` (their own permission, given to a group in Settings →
Groups), and, for privacy officers (``consent.view_consent_log``), the withdrawals and erasures not
yet confirmed by their destinations."""

from django import forms
from django.db import models
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.views.generic.models import CreateView
from wagtail.admin.viewsets.base import ViewSetGroup
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.permission_policies.base import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy

from consent.api import purposes
from segments.api import segment_choices
from tailored.forms import StrictJSONField

from . import admin_views
from .models import EVENT_CHOICES, Delivery, Destination, Source, Trigger


class ManageDestinationsPolicy(ModelPermissionPolicy):
    """Every action on destinations and deliveries needs ``manage_destinations``; deliveries are
    never added or edited by hand (only replayed)."""

    read_only = False

    def user_has_permission(self, user, action):
        if self.read_only and action in ("add", "change", "delete"):
            return False
        return user.is_active and user.has_perm(admin_views.MANAGE)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, a) for a in actions)


class DeliveryPolicy(ManageDestinationsPolicy):
    read_only = True


register_permission_policy(Destination, ManageDestinationsPolicy(Destination))
register_permission_policy(Delivery, DeliveryPolicy(Delivery))
register_permission_policy(Source, ManageDestinationsPolicy(Source))
register_permission_policy(Trigger, ManageDestinationsPolicy(Trigger))


def _purpose_choices() -> list[tuple[str, str]]:
    return [(p, p) for p in purposes() if p != "necessary"]


class DestinationViewSet(ModelViewSet):
    model = Destination
    icon = "site"
    menu_label = _("Destinations")
    name = "channels_destinations"
    url_prefix = "channels/destinations"
    form_fields = [
        "name",
        "kind",
        "enabled",
        "segments",
        "events",
        "purpose",
        "identifier",
        "mode",
        "url",
        "secrets",
        "options",
        "batch_size",
    ]
    list_display = ["name", "kind", "mode", "purpose", "enabled", "disabled_reason"]

    def formfield_for_dbfield(self, db_field, **kwargs):
        # What a marketer picks from: the segments, the events, the notice's purposes.
        if db_field.name == "segments":
            return forms.MultipleChoiceField(
                choices=segment_choices,
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label=_("Segments"),
            )
        if db_field.name == "events":
            return forms.MultipleChoiceField(
                choices=EVENT_CHOICES,
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label=_("Events"),
            )
        if db_field.name == "purpose":
            return forms.ChoiceField(
                choices=_purpose_choices, label=_("Purpose"), help_text=db_field.help_text
            )
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StrictJSONField)
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, **kwargs)

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/sync/", admin_views.SyncView.as_view(), name="sync"),
        ]


class DeliveryViewSet(ModelViewSet):
    model = Delivery
    icon = "list-ul"
    menu_label = _("Delivery log")
    name = "channels_deliveries"
    url_prefix = "channels/deliveries"
    inspect_view_enabled = True
    inspect_view_fields = [
        "message_id",
        "destination",
        "type",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
        "response_status",
        "response",
    ]
    form_fields = ["status"]
    list_display = [
        "message_id",
        "destination",
        "type",
        "status",
        "attempts",
        "response_status",
        "created_at",
    ]
    list_filter = ["status", "destination", "type"]

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/replay/", admin_views.ReplayView.as_view(), name="replay"),
        ]


class SourceCreateView(CreateView):
    def save_instance(self):
        instance = self.form.save(commit=False)
        self.write_key = instance.set_write_key()
        instance.save()
        return instance

    def get_success_message(self, instance):
        return _("Source “%(name)s” created. Its write key, shown only now: %(key)s") % {
            "name": instance.name,
            "key": self.write_key,
        }


class SourceViewSet(ModelViewSet):
    """Systems that send events in; the write key is shown once, when the source is created."""

    model = Source
    icon = "download"
    menu_label = _("Event sources")
    name = "channels_sources"
    url_prefix = "channels/sources"
    add_view_class = SourceCreateView
    form_fields = ["name", "purposes", "enabled"]
    list_display = ["name", "purposes", "enabled", "created_at"]

    def formfield_for_dbfield(self, db_field, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StrictJSONField)
        return super().formfield_for_dbfield(db_field, **kwargs)


class TriggerViewSet(ModelViewSet):
    """Follow-ups started by a segment entry (a webhook now, or after a wait)."""

    model = Trigger
    icon = "resubmit"
    menu_label = _("Triggers")
    name = "channels_triggers"
    url_prefix = "channels/triggers"
    form_fields = ["name", "segment", "destination", "delay_seconds", "cancel_events", "enabled"]
    list_display = ["name", "segment", "destination", "delay_seconds", "enabled"]

    def formfield_for_dbfield(self, db_field, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StrictJSONField)
        return super().formfield_for_dbfield(db_field, **kwargs)


class ChannelsGroup(ViewSetGroup):
    menu_label = _("Channels")
    menu_icon = "site"
    menu_order = 8850
    items = (DestinationViewSet, TriggerViewSet, DeliveryViewSet, SourceViewSet)


@hooks.register("register_admin_viewset")
def register_viewsets():
    return ChannelsGroup()


class PrivacyOfficerItem(MenuItem):
    def is_shown(self, request):
        return request.user.has_perm(admin_views.PRIVACY)


@hooks.register("register_admin_urls")
def register_urls():
    return [
        path(
            "channels/propagations/",
            admin_views.PropagationsView.as_view(),
            name="channels_propagations",
        )
    ]


@hooks.register("register_admin_menu_item")
def register_propagations_item():
    return PrivacyOfficerItem(
        _("Destinations: pending removals"),
        reverse("channels_propagations"),
        icon_name="lock",
        order=8905,
    )
