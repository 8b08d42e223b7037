"""The segments app's screen in the Wagtail admin: Reports → Stream dead letters
(:mod:`segments.admin_views`), shown to those with ``segments.manage_stream``."""

from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from .admin_views import DeadLetterActionView, DeadLettersView, can_manage_stream


class StreamMenuItem(MenuItem):
    def is_shown(self, request):
        return can_manage_stream(request.user)


@hooks.register("register_admin_urls")
def register_dead_letter_urls():
    return [
        path("reports/dead-letters/", DeadLettersView.as_view(), name="segments_dead_letters"),
        path(
            "reports/dead-letters/action/",
            DeadLetterActionView.as_view(),
            name="segments_dead_letter_action",
        ),
    ]


@hooks.register("register_reports_menu_item")
def register_dead_letters_menu_item():
    return StreamMenuItem(
        _("Stream dead letters"),
        reverse("segments_dead_letters"),
        name="segments-dead-letters",
        icon_name="warning",
        order=900,
    )
