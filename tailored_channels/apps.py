from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    """Segments beyond the page: destinations (webhooks, file exports, Mailchimp, a site's
    own), deliveries, the propagation of consent withdrawals and erasures, and events in. A
    sibling of experiments: it uses only ``segments.api`` and ``consent.api``, and nothing
    below names it (it plugs into consent's registries and signal)."""

    name = "tailored_channels"
    label = "tailored_channels"
    verbose_name = "Channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent import api as consent

        from . import checks, privacy, tasks  # noqa: F401  (registers the checks and tasks)

        consent.consents_recorded.connect(
            privacy.on_consents_recorded, dispatch_uid="tailored_channels.propagate_withdrawal"
        )
        consent.register_erasure_handler("tailored_channels", privacy.erase)
        consent.register_export_handler("tailored_channels", privacy.export)
        consent.register_rekey_handler("tailored_channels", privacy.rekey)
        consent.register_retention_handler("tailored_channels", privacy.retention)
        consent.register_processing_activity(
            "tailored_channels",
            categories=privacy.PROCESSING_CATEGORIES,
            retention=privacy.PROCESSING_RETENTION,
            recipients=privacy.PROCESSING_RECIPIENTS,
        )
