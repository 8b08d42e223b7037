from django.db import models
from django.utils.translation import gettext_lazy as _


class ConsentRecord(models.Model):
    """One consent decision of one pseudonymous visitor, as the server recorded it."""

    class Method(models.TextChoices):
        BANNER_ACCEPT_ALL = "banner_accept_all", _("Banner: accept all")
        BANNER_REJECT_ALL = "banner_reject_all", _("Banner: reject all")
        CUSTOM = "custom", _("Custom choice")
        WITHDRAW = "withdraw", _("Withdrawal")
        API = "api", _("API")

    visitor_key = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    granted = models.JSONField(default=list)
    denied = models.JSONField(default=list)
    notice_version = models.CharField(max_length=32)
    method = models.CharField(max_length=32, choices=Method.choices)
    language = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["visitor_key", "-created_at"])]
        permissions = [("view_consent_log", "Can view the consent log")]

    def __str__(self) -> str:
        return f"{self.visitor_key[:8]}… {self.method} {self.created_at:%Y-%m-%d %H:%M}"
