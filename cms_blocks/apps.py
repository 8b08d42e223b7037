from django.apps import AppConfig


class CmsBlocksConfig(AppConfig):
    name = "cms_blocks"
    label = "cms_blocks"
    verbose_name = "Personalised content blocks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.models.signals import post_delete, post_save, pre_delete
        from wagtail.models import Page
        from wagtail.signals import page_unpublished, post_page_move, pre_page_move

        from . import variants
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

        # Variants follow their page: deleted, unpublished and moved with it (cms_blocks.variants).
        pre_delete.connect(
            variants.remember_variants, sender=Page, dispatch_uid="cms_blocks.variants.pre_delete"
        )
        post_delete.connect(
            variants.delete_variants, sender=Page, dispatch_uid="cms_blocks.variants.post_delete"
        )
        page_unpublished.connect(
            variants.unpublish_variants, dispatch_uid="cms_blocks.variants.unpublished"
        )
        pre_page_move.connect(variants.check_move, dispatch_uid="cms_blocks.variants.pre_move")
        post_page_move.connect(variants.move_variants, dispatch_uid="cms_blocks.variants.post_move")

        # Every model referring to a segment is in Wagtail's reference index (usage, deletion).
        from .references import index_segment_referrers

        index_segment_referrers()
