from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    label = "experiments"
    verbose_name = "Experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_delete, post_save
        from wagtail.models import Page
        from wagtail.signals import page_published, page_unpublished

        from consent import api as consent
        from segments import api as segments

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            pipeline,
            privacy,
            runtime,
        )
        from .models import Arm, Experiment

        # Enrolment, exposures and goals ride on the segments drain (no event of their own).
        segments.register_batch_step(pipeline.STEP_NAME, pipeline.step)
        # Other processes learn of a change through the segments' freshness check.
        segments.register_definitions(runtime.DEFINITIONS, Experiment, Arm)
        consent.register_export_handler("experiments", privacy.export)
        consent.register_erasure_handler("experiments", privacy.erase)
        consent.register_rekey_handler("experiments", privacy.rekey)
        consent.register_retention_handler("experiments", privacy.retention)
        consent.register_processing_activity(
            "experiments",
            categories=privacy.PROCESSING_CATEGORIES,
            retention=privacy.PROCESSING_RETENTION,
        )
        # What an experiment's page can show (its blocks, its page variants) is read with
        # the experiments: a publication there reads them again (runtime.page_changed).
        page_published.connect(runtime.page_changed, dispatch_uid="experiments.page.published")
        page_unpublished.connect(runtime.page_changed, dispatch_uid="experiments.page.unpublished")
        for model in apps.get_models():  # per page model: other models keep fast deletes
            if issubclass(model, Page):
                post_delete.connect(
                    runtime.page_changed,
                    sender=model,
                    dispatch_uid=f"experiments.page.deleted.{model._meta.label}",
                )
        # This process sees an edit at once; the others at their next freshness check.
        for model in (Experiment, Arm):
            for signal in (post_save, post_delete):
                signal.connect(
                    lambda **kwargs: runtime.forget(),
                    sender=model,
                    weak=False,
                    dispatch_uid=f"experiments.forget.{model.__name__}.{signal is post_save}",
                )
