from django.db import models
from django.utils.translation import gettext_lazy as _


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete a consent record through the ORM."""


class ConsentRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Consent records are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnlyError(
            "Consent records are append-only: only the retention job removes expired ones."
        )

    def _purge(self) -> int:
        """Remove rows for retention (with a chain checkpoint written first): internal only."""
        return self._raw_delete(self.db)


class Notice(models.Model):
    """One published version of the consent notice: texts and purposes as shown to visitors.

    Rows are never edited: any change of a text or a purpose publishes a new version, and
    consent given under an earlier version no longer counts.
    """

    version = models.PositiveIntegerField(unique=True)
    banner_text = models.TextField()
    policy_text = models.TextField()
    purposes = models.JSONField(help_text=_("Snapshot of the purposes and their cookies."))
    text_hash = models.CharField(max_length=64)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        get_latest_by = "version"

    def __str__(self) -> str:
        return f"Notice v{self.version}"


class ConsentRecord(models.Model):
    """One consent decision of one pseudonymous visitor: the proof, hash-chained.

    ``record_hash`` is an HMAC (under a key from settings, never the database) over the
    record's content and ``prev_hash``, the previous record's hash; ``seq`` numbers records
    without gaps. ``consent_verify_log`` detects a modified, deleted, inserted or reordered
    record.
    """

    class Method(models.TextChoices):
        BANNER_ACCEPT_ALL = "banner_accept_all", _("Banner: accept all")
        BANNER_REJECT_ALL = "banner_reject_all", _("Banner: reject all")
        BANNER_CUSTOM = "banner_custom", _("Banner: custom choice")
        SETTINGS_PAGE = "settings_page", _("Preferences page")
        API = "api", _("API")
        API_ACCEPT_ALL = "api_accept_all", _("API: accept all")
        API_REJECT_ALL = "api_reject_all", _("API: reject all")
        API_WITHDRAW = "api_withdraw", _("API: withdrawal")
        GPC = "gpc", _("Global Privacy Control")
        WITHDRAW = "withdraw", _("Withdrawal")
        ERASURE = "erasure", _("Erasure")
        KEY_ROTATION = "key_rotation", _("Key rotation")

    seq = models.PositiveBigIntegerField(unique=True)
    visitor_key = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()
    granted = models.JSONField(default=list)
    denied = models.JSONField(default=list)
    notice_version = models.CharField(max_length=32)
    notice_hash = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=32, choices=Method.choices)
    language = models.CharField(max_length=16, blank=True)
    gpc = models.BooleanField(default=False, help_text=_("Sec-GPC: 1 was sent with the decision."))
    prev_hash = models.CharField(max_length=64)
    record_hash = models.CharField(max_length=64, unique=True)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["visitor_key", "-seq"])]
        permissions = [("view_consent_log", "Can view the consent log and privacy tools")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.visitor_key[:8]}… {self.method} {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Consent records are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Consent records are append-only: they cannot be deleted.")


class ChainHead(models.Model):
    """The chain's current end (a single row, locked while a record is appended)."""

    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")
    # Where verification starts after retention removed the oldest records.
    first_seq = models.PositiveBigIntegerField(default=1)
    first_prev_hash = models.CharField(max_length=64, default="")
    checkpoint_mac = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"Consent log head #{self.last_seq}"


class ConsentTally(models.Model):
    """Anonymous daily counts of decisions (rejections included, which store no identifier)."""

    day = models.DateField()
    method = models.CharField(max_length=32)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "method"], name="tally_day_method")]

    def __str__(self) -> str:
        return f"{self.day} {self.method}: {self.count}"


class ErasureRequest(models.Model):
    """An erasure to carry out (after a withdrawal, with a delay) or carried out: the minimal
    record kept after everything else about the visitor is gone."""

    class Reason(models.TextChoices):
        REQUEST = "request", _("Data-subject request")
        WITHDRAWAL = "withdrawal", _("Consent withdrawn")
        VISITOR = "visitor", _("Visitor's own request")
        LAPSED = "lapsed", _("Consent expired or outdated")

    visitor_key = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    purposes = models.JSONField(default=list, help_text=_("Empty: everything."))
    requested_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, help_text=_("What each handler removed (counts)."))

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Erasure {self.pk} ({self.reason})"


class IdentityLink(models.Model):
    """A logged-in user linked to a visitor profile, both as keyed hashes (with consent)."""

    user_key = models.CharField(max_length=64, db_index=True)
    visitor_key = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_key", "visitor_key"], name="identity_link_unique")
        ]

    def __str__(self) -> str:
        return f"Link {self.user_key[:8]}… → {self.visitor_key[:8]}…"


class PurgeLog(models.Model):
    """One run of a retention purge: what was removed, up to when."""

    ran_at = models.DateTimeField(auto_now_add=True)
    target = models.CharField(max_length=64)
    cutoff = models.DateTimeField()
    removed = models.PositiveIntegerField()

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"Purge of {self.target} at {self.ran_at:%Y-%m-%d %H:%M}: {self.removed}"
