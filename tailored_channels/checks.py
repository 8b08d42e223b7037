"""System checks of the channels app."""

from django.core.checks import Error, register
from django.utils.module_loading import import_string

from . import addresses
from .conf import get_setting


@register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    path = get_setting("CHANNELS_ACCOUNT_RESOLVER")
    if path:
        try:
            import_string(path)
        except ImportError:
            errors.append(
                Error(
                    f"CHANNELS_ACCOUNT_RESOLVER names {path!r}, which cannot be imported.",
                    hint="A dotted path to f(visitor_keys) -> {key: {'account', 'email'}}.",
                    id="tailored_channels.E001",
                )
            )
    schedule = get_setting("CHANNELS_RETRY_SCHEDULE")
    if not schedule or any(not isinstance(s, int | float) or s < 0 for s in schedule):
        errors.append(
            Error(
                "CHANNELS_RETRY_SCHEDULE must be a non-empty list of seconds.",
                hint="The default retries over about three days.",
                id="tailored_channels.E002",
            )
        )
    errors.extend(check_allowed_networks())
    return errors


def check_allowed_networks() -> list[Error]:
    value = get_setting("CHANNELS_ALLOWED_PRIVATE_NETWORKS")
    try:
        networks = addresses.parse_networks(value)
    except (TypeError, ValueError) as exc:
        return [
            Error(
                "CHANNELS_ALLOWED_PRIVATE_NETWORKS must be a list of addresses or networks.",
                hint=f"{value!r}: {exc} (e.g. ['10.20.0.0/16', '127.0.0.1']). Until it is "
                "fixed, no private address is allowed.",
                id="tailored_channels.E003",
            )
        ]
    broad = [reason for reason in map(addresses.broad, networks) if reason]
    if broad:
        return [
            Error(
                "CHANNELS_ALLOWED_PRIVATE_NETWORKS allows what destinations must never reach: "
                + "; ".join(broad)
                + ".",
                hint="List only the networks of your own receivers (a destination URL is typed "
                "in the admin; the workers then send requests to it).",
                id="tailored_channels.E004",
            )
        ]
    return []
