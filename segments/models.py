from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .extensions import reference_problems
from .rules import RuleError, compile_rule, is_context_only, parse_window


def persist_seconds(persist_for: str) -> float:
    """How long a segment keeps members after they last matched, in seconds, from its
    ``persist_for`` ("30d"); 0 for a segment that is not persistent (or a value the form would
    refuse, written past it)."""
    try:
        return parse_window(persist_for)[0] if persist_for else 0.0
    except RuleError:
        return 0.0


class Segment(models.Model):
    """A group of visitors defined by a rule over their behaviour."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(
        _("slug"),
        max_length=64,
        unique=True,
        help_text=_("Used by content variants and templates; keep it stable."),
    )
    description = models.TextField(_("description"), blank=True)
    rule = models.JSONField(_("rule"), help_text=_("The condition tree visitors must satisfy."))
    priority = models.IntegerField(
        _("priority"), default=0, help_text=_("Higher priority segments win when variants compete.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    persist_for = models.CharField(
        _("keep members for"),
        max_length=8,
        blank=True,
        default="",
        help_text=_(
            "Persistent segment: once in, a visitor stays in for this long after they last "
            "matched the rule, even when it stops holding (a number followed by s, m, h or d, "
            "such as 30d; at most 400 days). Empty: members leave as soon as the rule stops "
            "holding. Kept only for visitors who consented."
        ),
    )
    sample_percent = models.PositiveSmallIntegerField(
        _("random percentage"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_(
            "Only this percentage of the visitors matching the rule are in the segment, the "
            "others are held out (0 to 100; empty: all of them). Each visitor's draw is fixed "
            "(from their pseudonymous key), so they stay on their side; visitors without "
            "consent have no key and are never drawn in."
        ),
    )
    static = models.BooleanField(
        _("static"),
        default=False,
        help_text=_(
            "Static segment: its members are the visitors whose stored behaviour matches the "
            "rule when it is saved as static; then they are fixed (nobody enters or leaves, "
            "whatever they do or however the rule is edited)."
        ),
    )
    members_computed_at = models.DateTimeField(
        _("members computed at"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        permissions = [
            (
                "export_segment_members",
                "Can export the pseudonymous members of static segments",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            compile_rule(self.rule)  # the site's time zone only matters when evaluating
        except RuleError as exc:
            raise ValidationError({"rule": str(exc)}) from exc
        problems = reference_problems(self.rule)  # what optional apps say of its references
        if problems:
            raise ValidationError({"rule": problems})
        if self.persist_for:
            try:
                parse_window(self.persist_for)
            except RuleError as exc:
                raise ValidationError({"persist_for": exc.message}) from exc
        if self.static and is_context_only(self.rule):
            raise ValidationError(
                {
                    "static": _(
                        "A static segment's members are computed from stored behaviour: its "
                        "rule needs at least one condition on it (a rule made only of request "
                        "conditions has nobody to compute)."
                    )
                }
            )


class StaticMember(models.Model):
    """A member of a static segment, computed once (``segments.stream.static``): by the
    pseudonymous key only. Exported, erased, re-keyed and purged with the visitor's other
    rows (``segments.privacy``)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="static_members")
    visitor_key = models.CharField(max_length=64)
    added_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "visitor_key"], name="static_member_once_per_segment"
            )
        ]
        indexes = [models.Index(fields=["visitor_key"])]

    def __str__(self) -> str:
        return f"{self.visitor_key[:8]}… in {self.segment_id}"


class LoggedEvent(models.Model):
    """The durable event log: what retraining, export, erasure and rebuilds read. (An event
    on its way there is a :class:`segments.events.Event`.)"""

    # The event's id is the key: a batch delivered twice logs each event once. Few indexes,
    # because every one of them is paid for on each of thousands of inserts per second.
    event_id = models.UUIDField(primary_key=True)
    visitor_key = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict)

    class Meta:
        # On PostgreSQL a BRIN index on occurred_at (nearly free to maintain) serves the
        # time-range reads of retraining and retention; see migration 0001.
        db_table = "segments_event"  # the model's name before 0004; raw SQL in events.log
        # The stream's dead-letter screen (segments.admin_views): operators, not editors.
        permissions = [
            ("manage_stream", "Can see and repair the event stream's dead letters"),
        ]
        indexes = [models.Index(fields=["visitor_key", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.name} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class MembershipChange(models.Model):
    """A visitor entering or leaving a segment, when, and why (for explanations and sizes)."""

    visitor_key = models.CharField(max_length=64)
    segment = models.SlugField(max_length=64)
    entered = models.BooleanField()
    at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["segment", "at"]),
            models.Index(fields=["visitor_key", "at"]),
        ]

    def __str__(self) -> str:
        verb = "entered" if self.entered else "left"
        return f"{self.visitor_key[:8]}… {verb} {self.segment} at {self.at:%Y-%m-%d %H:%M}"


class SegmentSnapshot(models.Model):
    """A segment's size on a day, with the version of its rule (auditability)."""

    segment = models.SlugField(max_length=64)
    day = models.DateField()
    size = models.PositiveIntegerField()
    rule_hash = models.CharField(max_length=64)
    taken_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "segment"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "day"], name="snapshot_segment_day")
        ]

    def __str__(self) -> str:
        return f"{self.segment} on {self.day}: {self.size}"


class PendingConsentMirror(models.Model):
    """A visitor whose consent state the fast store may not hold yet (the outbox of mirror
    updates): written with each consent decision and removed once the store holds the state
    rebuilt from the durable record. A decision made while Redis was unreachable stays here
    until a request, a drain or the periodic task (``segments.sync_consent_mirrors``) copies
    it; the drain never applies events of a visitor listed here before doing so."""

    visitor_key = models.CharField(max_length=64, primary_key=True)
    queued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.visitor_key[:8]}… since {self.queued_at:%Y-%m-%d %H:%M:%S}"
