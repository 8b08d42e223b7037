from django.apps import AppConfig


class CmsBlocksConfig(AppConfig):
    name = "cms_blocks"
    label = "cms_blocks"
    verbose_name = "Personalised content blocks"
    default_auto_field = "django.db.models.BigAutoField"
