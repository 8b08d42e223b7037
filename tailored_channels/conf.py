"""Settings access for the channels app (every ``CHANNELS_*`` setting with its default in
:mod:`tailored_channels.defaults`) and its periodic tasks (``BEAT_SCHEDULE``) for a project's
``CELERY_BEAT_SCHEDULE``."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

BEAT_SCHEDULE = {
    # Membership changes to deliveries (entries and exits of the destinations' segments).
    "channels-fan-out": {"task": "tailored_channels.fan_out", "schedule": timedelta(seconds=10)},
    # Deliveries due (first attempts not yet made, retries whose time has come).
    "channels-deliver-due": {
        "task": "tailored_channels.deliver_due",
        "schedule": timedelta(seconds=60),
    },
    # Follow-ups whose wait is over (cancelled if the visitor left the segment or converted).
    "channels-follow-ups": {
        "task": "tailored_channels.follow_ups",
        "schedule": timedelta(seconds=60),
    },
    # Mirror-mode destinations made to hold exactly their segments' members again.
    "channels-reconcile": {"task": "tailored_channels.reconcile", "schedule": timedelta(days=1)},
    # File exports whose interval has passed.
    "channels-exports": {"task": "tailored_channels.export_due", "schedule": timedelta(minutes=15)},
}
