"""Events in (the Segment tracking specification); include under a prefix, e.g.
``path("api/channels/", include("tailored_channels.urls"))``."""

from django.urls import path

from .inbound import InboundView

app_name = "tailored_channels"

urlpatterns = [
    path(f"v1/{kind}", InboundView.as_view(kind=kind), name=kind)
    for kind in ("track", "page", "identify", "batch")
]
