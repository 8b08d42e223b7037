from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_migrate, post_save


class ConsentConfig(AppConfig):
    name = "consent"
    label = "consent"
    verbose_name = "Consent and privacy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cookie_consent.models import Cookie, CookieGroup

        from . import checks  # noqa: F401  (registers the system checks)
        from .inventory import install_validators
        from .models import ErasureRequest
        from .receivers import ensure_setup, erasure_requested, link_user, purposes_changed

        post_migrate.connect(ensure_setup, sender=self, dispatch_uid="consent.ensure_setup")
        for model in (CookieGroup, Cookie):
            post_save.connect(
                purposes_changed, sender=model, dispatch_uid=f"consent.{model.__name__}.s"
            )
            post_delete.connect(
                purposes_changed, sender=model, dispatch_uid=f"consent.{model.__name__}.d"
            )
        install_validators()  # the inventory refuses cookies no response could carry
        user_logged_in.connect(link_user, dispatch_uid="consent.link_user")
        post_save.connect(
            erasure_requested, sender=ErasureRequest, dispatch_uid="consent.erasure_requested"
        )
