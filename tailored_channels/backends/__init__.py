"""Destination backends: how one delivery's items reach one kind of destination.

A site's own destination subclasses :class:`~tailored_channels.backends.base.BaseBackend` and is
named by dotted path in the destination's options (``{"backend":
"myproject.channels.CrmBackend"}``).
"""

from django.utils.module_loading import import_string

from .base import BaseBackend, Result

BUILT_IN = {
    "webhook": "tailored_channels.backends.webhook.WebhookBackend",
    "mailchimp": "tailored_channels.backends.mailchimp.MailchimpBackend",
    "file": "tailored_channels.backends.files.FileBackend",
}


def backend_for(destination) -> BaseBackend:
    path = BUILT_IN.get(destination.kind) or destination.options.get("backend", "")
    return import_string(path)(destination)


__all__ = ["BUILT_IN", "BaseBackend", "Result", "backend_for"]
