"""Destinations (where segment changes go), what each holds, deliveries (the log of every
message sent, with its attempts), propagations of consent withdrawals and erasures, and the
sources allowed to send events in."""

import hashlib
import re
import secrets as _secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import outbound, signing

ENTERED, EXITED, WITHDRAWN, ERASED = "entered", "exited", "withdrawn", "erased"
EVENT_CHOICES = [
    (ENTERED, _("Entered a segment")),
    (EXITED, _("Left a segment")),
    (WITHDRAWN, _("Withdrew consent")),
    (ERASED, _("Erased")),
]
EVENTS = [value for value, _label in EVENT_CHOICES]


def _default_events() -> list[str]:
    return list(EVENTS)


def _default_secrets() -> str:
    return signing.new_secret()


# Mailchimp's data centres ("us1", "us21") and list ids are plain alphanumeric names.
MAILCHIMP_SERVER = re.compile(r"[a-z]{2,8}[0-9]{1,4}")
MAILCHIMP_LIST_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def mailchimp_problem(options: dict) -> str | None:
    """Why these options cannot be used (``None``: they can), before any request."""
    if not MAILCHIMP_SERVER.fullmatch(str(options.get("server", ""))):
        return "Mailchimp's server is the data centre of the API key, e.g. us1."
    if not MAILCHIMP_LIST_ID.fullmatch(str(options.get("list_id", ""))):
        return "Mailchimp's list_id is the audience id, letters and digits only."
    host = options.get("host")
    if host is not None and not isinstance(host, str):
        return "Mailchimp's host must be a URL."
    return None


class Destination(models.Model):
    """One place segment changes go: a webhook, a file export, Mailchimp, or a site's own
    backend. Visitors are sent to it only while they grant its ``purpose``."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", _("Webhook (Standard Webhooks)")
        FILE = "file", _("File export (CSV or JSONL)")
        MAILCHIMP = "mailchimp", _("Mailchimp audience")
        CUSTOM = "custom", _("The site's own backend")

    class Mode(models.TextChoices):
        EVENTS = "events", _("Events: each entry and exit as it happens")
        MIRROR = "mirror", _("Mirror: the destination holds exactly the segments' members")

    class Identifier(models.TextChoices):
        KEYED_HASH = "keyed_hash", _("Keyed hash (pseudonymous, one per destination)")
        ACCOUNT = "account", _("The linked account's identifier")
        EMAIL = "email", _("The linked account's email address")

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WEBHOOK)
    enabled = models.BooleanField(default=True)
    segments = models.JSONField(
        default=list, blank=True, help_text=_("Slugs of the segments sent to this destination.")
    )
    events = models.JSONField(
        default=_default_events,
        blank=True,
        help_text=_("Which changes are sent: " + ", ".join(EVENTS)),
    )
    purpose = models.CharField(
        max_length=64,
        help_text=_(
            "The consent purpose visitors must grant to be sent here (one of CONSENT_PURPOSES: "
            "the notice lists it, visitors can refuse it)."
        ),
    )
    identifier = models.CharField(
        max_length=16, choices=Identifier.choices, default=Identifier.KEYED_HASH
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.EVENTS)
    url = models.URLField(blank=True, help_text=_("Webhook: the receiver's URL."))
    secrets = models.TextField(
        default=_default_secrets,
        blank=True,
        help_text=_(
            "Webhook: signing secrets (whsec_…), one per line. To rotate, put the new one "
            "first and keep the old one until the receiver has switched."
        ),
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            'Mailchimp: {"server": "us1", "list_id": …, "api_key": …}. File: {"format": '
            '"csv" or "jsonl", "every_hours": 24}. Custom: {"backend": "dotted.path"}.'
        ),
    )
    batch_size = models.PositiveIntegerField(
        default=500, help_text=_("Items per delivery at most (Mailchimp: 500).")
    )
    disabled_reason = models.CharField(max_length=200, blank=True)
    last_export_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_destinations", "Can manage destinations and their deliveries")]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from consent.api import purposes

        problems = {}
        if self.purpose not in purposes() or self.purpose == "necessary":
            problems["purpose"] = _("Choose a purpose of the consent notice (not necessary).")
        unknown = [e for e in self.events if e not in EVENTS]
        if unknown:
            problems["events"] = _("Unknown events: %s") % ", ".join(map(str, unknown))
        if self.kind == self.Kind.WEBHOOK:
            if not self.url:
                problems["url"] = _("A webhook needs a URL.")
            elif refused := outbound.problem(self.url):
                problems["url"] = refused
            try:
                if not signing.parse_secrets(self.secrets):
                    raise signing.InvalidSecret(_("A webhook needs a secret."))
                for secret in signing.parse_secrets(self.secrets):
                    signing.secret_bytes(secret)
            except signing.InvalidSecret as exc:
                problems["secrets"] = str(exc)
        if self.kind == self.Kind.MAILCHIMP:
            if self.identifier != self.Identifier.EMAIL:
                problems["identifier"] = _("Mailchimp members are found by email address.")
            if self.batch_size > 500:
                problems["batch_size"] = _("Mailchimp takes at most 500 members per batch.")
            missing = [k for k in ("server", "list_id", "api_key") if not self.options.get(k)]
            if missing:
                problems["options"] = _("Mailchimp needs %s.") % ", ".join(missing)
            elif refused := mailchimp_problem(self.options) or (
                self.options.get("host") and outbound.problem(self.options["host"])
            ):
                problems["options"] = refused
        if self.enabled and not problems:
            self.disabled_reason = ""  # enabled again, once fixed
        if problems:
            raise ValidationError(problems)

    def sends(self, event: str) -> bool:
        return self.enabled and event in self.events


class Sender(models.Model):
    """Which worker sends a destination's deliveries, until when: a lease, so that one worker
    at a time sends to a destination without holding a transaction (or a row lock) across its
    requests. It is taken and renewed by a conditional UPDATE that commits at once (free, or
    expired, or already ours), which PostgreSQL and SQLite both do atomically; a worker that dies
    lets it expire and another one carries on.

    It is a row of its own rather than columns of :class:`Destination`: saving a destination
    from the admin writes every column of its row, and would hand the lease out again under a
    worker still sending; taking the lease never waits on an edit of the destination either."""

    destination = models.OneToOneField(
        Destination, on_delete=models.CASCADE, primary_key=True, related_name="sender"
    )
    token = models.CharField(max_length=32, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.destination_id} leased until {self.until}"


class AudienceMember(models.Model):
    """What a destination has been told about one visitor and one segment: ``active`` while it
    holds them. The identifier sent is kept so a later delete call can name them even after the
    account link is gone (an erasure removes it first)."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="members")
    visitor_key = models.CharField(max_length=64)
    segment = models.SlugField(max_length=64)
    identifier_type = models.CharField(max_length=16, default="keyed_hash")
    identifier = models.CharField(max_length=254)
    active = models.BooleanField(default=True)
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "visitor_key", "segment"], name="channels_member_unique"
            )
        ]
        indexes = [models.Index(fields=["visitor_key"])]

    def __str__(self) -> str:
        return f"{self.visitor_key[:8]}… in {self.segment} at {self.destination_id}"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class Delivery(models.Model):
    """One message to one destination: a batch of items, signed and sent by a worker, retried
    with the same id until the receiver accepts it (the delivery log of the admin)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=64, unique=True, default=new_message_id)
    type = models.CharField(max_length=32)
    items = models.JSONField(default=list)
    # The visitor key of each item (never sent): what an erasure strips from the log.
    keys = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # A withdrawal's or an erasure's: retried until it succeeds.
    persistent = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    response = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["destination", "status"]),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.message_id} to {self.destination_id} ({self.status})"


class Propagation(models.Model):
    """A consent withdrawal or an erasure that must reach one destination: pending until the
    destination confirmed it (shown to the privacy officer until then)."""

    class Reason(models.TextChoices):
        WITHDRAWN = WITHDRAWN, _("Consent withdrawn")
        ERASED = ERASED, _("Erased")

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="propagations"
    )
    visitor_key = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    requested_at = models.DateTimeField(auto_now_add=True)
    delivery = models.ForeignKey(Delivery, null=True, on_delete=models.SET_NULL)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["done_at", "requested_at"])]

    def __str__(self) -> str:
        return f"{self.reason} of {self.visitor_key[:8]}… to {self.destination_id}"


class Trigger(models.Model):
    """A follow-up started by a segment entry: a ``follow_up`` item sent to a destination now
    or after ``delay_seconds``, cancelled if the visitor leaves the segment, or does one of
    ``cancel_events`` (converts), first. Drives "high intent -> personalised email sequence"
    from an email tool."""

    name = models.CharField(max_length=100, unique=True)
    segment = models.SlugField(max_length=64)
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="triggers")
    delay_seconds = models.PositiveIntegerField(
        default=0, help_text=_("0: at once; otherwise after this wait.")
    )
    cancel_events = models.JSONField(
        default=list,
        blank=True,
        help_text=_('Events that cancel a waiting follow-up (conversions), e.g. ["purchase"].'),
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FollowUp(models.Model):
    """One visitor's follow-up of a trigger: waiting, sent, or cancelled (and why)."""

    class Status(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="follow_ups")
    visitor_key = models.CharField(max_length=64)
    entered_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    reason = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["visitor_key"]),
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} for {self.visitor_key[:8]}… ({self.status})"


class Cursor(models.Model):
    """How far the fan-out has read the segments' history of membership changes, and the ids it
    skipped that may still appear (a transaction committed after a later one)."""

    name = models.CharField(max_length=32, unique=True)
    position = models.BigIntegerField(default=0)
    gaps = models.JSONField(default=dict)  # {id: first seen (epoch seconds)}

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"


def hash_write_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_write_key() -> str:
    return "wk_" + _secrets.token_urlsafe(24)


class Source(models.Model):
    """A system allowed to send events in (a mobile app, a server, a CDP), with the consent
    it asserts for the visitors it sends (recorded in the consent log with its name)."""

    name = models.CharField(max_length=100, unique=True)
    write_key_hash = models.CharField(max_length=64, unique=True, editable=False)
    purposes = models.JSONField(
        default=list, help_text=_("Purposes the source asserts its visitors granted.")
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_write_key(self) -> str:
        """A new write key (shown once; only its hash is stored)."""
        key = new_write_key()
        self.write_key_hash = hash_write_key(key)
        return key
