from django.db import models
from django.utils.translation import gettext_lazy as _


class Results(models.Model):
    """Carries the editors' "view results" permission; holds no data (no table).

    Managing segments (the snippet's add/change/delete permissions), viewing results and the
    privacy screens (``consent.view_consent_log``) are separate permissions, each given to
    groups in Settings → Groups.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_results", _("Can view segment results and block reports"))]
        verbose_name = _("segment results")
        verbose_name_plural = _("segment results")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
