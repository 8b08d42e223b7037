from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    label = "segments"
    verbose_name = "Segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent import api as consent

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            privacy,
        )
        from .receivers import on_consents_recorded, on_static_segment_saved

        consent.consents_recorded.connect(
            on_consents_recorded, dispatch_uid="segments.mirror_consent"
        )
        consent.register_export_handler("segments", privacy.export)
        consent.register_erasure_handler("segments", privacy.erase)
        consent.register_rekey_handler("segments", privacy.rekey)
        consent.register_retention_handler("segments", privacy.retention)
        from tailored import health as readiness
        from tailored import metrics as prometheus

        from . import health, metrics

        readiness.register_readiness_check("fast_store", health.check_fast_store)
        readiness.register_readiness_check("partitions", health.check_partitions)
        readiness.register_readiness_check(
            "worker_heartbeat", health.check_worker_heartbeat, critical=False
        )
        prometheus.register_collector("segments", metrics.collect)
        consent.register_processing_activity(
            "segments",
            categories=privacy.PROCESSING_CATEGORIES,
            retention=privacy.PROCESSING_RETENTION,
        )

        from django.db.models.signals import post_delete, post_save, pre_save

        from .definitions import forget_definitions
        from .models import Segment
        from .receivers import on_segment_deleted, on_segment_saved, remember_definition

        for signal in (post_save, post_delete):
            signal.connect(
                lambda **kwargs: forget_definitions(),
                sender=Segment,
                weak=False,
                dispatch_uid=f"segments.forget_definitions.{signal is post_save}",
            )
        # A changed definition re-evaluates every stored visitor (the memberships would lag).
        pre_save.connect(remember_definition, sender=Segment, dispatch_uid="segments.definition")
        post_save.connect(on_segment_saved, sender=Segment, dispatch_uid="segments.reevaluate")
        post_delete.connect(
            on_segment_deleted, sender=Segment, dispatch_uid="segments.reevaluate.delete"
        )
        post_save.connect(on_static_segment_saved, sender=Segment, dispatch_uid="segments.static")
