from django.apps import AppConfig


class CmsBlocksConfig(AppConfig):
    name = "cms_blocks"
    label = "cms_blocks"
    verbose_name = "Personalised content blocks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.models.signals import post_delete, post_save

        from .models import PageVariantMixin, variant_index

        def page_changed(sender, **kwargs):
            # A page that can be a variant saved or deleted here (a variant created,
            # published, pointed at another page...): refresh this process's list of pages
            # with variants.
            if isinstance(sender, type) and issubclass(sender, PageVariantMixin):
                variant_index.forget()

        post_save.connect(page_changed, dispatch_uid="cms_blocks.variant_index.save", weak=False)
        post_delete.connect(
            page_changed, dispatch_uid="cms_blocks.variant_index.delete", weak=False
        )
        setting_changed.connect(variant_index.forget, dispatch_uid="cms_blocks.variant_index")
