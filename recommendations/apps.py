from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    """Recommendations: item lists maintained by the workers, read in the request's one round
    trip. Plugs into the segments drain (a batch step) and consent's data-subject requests;
    nothing in ``segments`` or ``consent`` names it."""

    name = "recommendations"
    label = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete
        from wagtail.signals import page_published, page_unpublished

        from consent import api as consent
        from segments import api as segments

        from . import items, pipeline, privacy
        from .models import Item

        segments.register_batch_step(pipeline.STEP_NAME, pipeline.step)
        segments.register_restore_step(pipeline.STEP_NAME, pipeline.restore)
        consent.register_export_handler("recommendations", privacy.export)
        consent.register_erasure_handler("recommendations", privacy.erase)
        consent.register_processing_activity(
            "recommendations",
            categories=privacy.PROCESSING_CATEGORIES,
            retention=privacy.PROCESSING_RETENTION,
        )
        for signal in (page_published, page_unpublished):
            signal.connect(_sync, weak=False, dispatch_uid=f"recommendations.sync.{id(signal)}")
        # A deleted page takes its item with it (cascade): this process forgets the catalogue.
        post_delete.connect(
            lambda **kwargs: items.forget(),
            sender=Item,
            weak=False,
            dispatch_uid="recommendations.forget",
        )


def _sync(sender, instance, **kwargs) -> None:
    from .items import sync_page

    sync_page(instance)
