"""What recommendations keep in the database: the items (pages, with an optional external id),
and the sums the workers keep up to date (co-occurrence, popularity) or build (similar pages).

The sums are aggregates over visitors (no visitor key): an erased visitor's contribution
leaves them at the next rebuild from the durable log (``recommendations.rebuild``, nightly),
which reads consented, unerased events only.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Item(models.Model):
    """A page that can be recommended. Kept in step with the page by the publishing signals
    and :func:`recommendations.items.sync_items`; ``recommendable`` is False for a page that
    is unpublished, private (a view restriction on it or an ancestor) or expired, which is
    then never recommended."""

    page = models.OneToOneField(
        "wagtailcore.Page",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="recommendation_item",
    )
    external_id = models.CharField(
        _("external id"),
        max_length=64,
        blank=True,
        help_text=_("The item's id in another system (a shop's SKU, Online Retail's StockCode)."),
    )
    category = models.CharField(_("category"), max_length=64, blank=True)
    text = models.TextField(blank=True)
    recommendable = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("recommendation item")
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~models.Q(external_id=""),
                name="recommendation_item_external_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"item {self.page_id} ({self.external_id or '-'})"


class Pair(models.Model):
    """Item ``a`` and item ``b`` were viewed, added to a cart or bought by the same visitor:
    the decayed, weighted sum of those co-occurrences (both orders are stored)."""

    a = models.IntegerField()
    b = models.IntegerField()
    weight = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["a", "b"], name="recommendation_pair_once")]
        indexes = [models.Index(fields=["a", "-weight"], name="recommendation_pair_top")]

    def __str__(self) -> str:
        return f"{self.a} with {self.b}: {self.weight:g}"


class Popularity(models.Model):
    """How popular an item is for everyone (``segment`` ``""``) and in each segment: the
    decayed, weighted sum of its events."""

    segment = models.CharField(max_length=100, blank=True)
    item = models.IntegerField()
    weight = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "item"], name="recommendation_popularity_once"
            )
        ]
        indexes = [models.Index(fields=["segment", "-weight"], name="recommendation_popular_top")]

    def __str__(self) -> str:
        return f"{self.item} in {self.segment or 'everyone'}: {self.weight:g}"


class SimilarList(models.Model):
    """The pages most similar to a page by their text (content-based, TF-IDF), best first."""

    item = models.IntegerField(primary_key=True)
    similar = models.JSONField(default=list)
    built_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"like {self.item}: {self.similar}"


class FactorModel(models.Model):
    """A version of the "for you" factorisation model (implicit-feedback ALS of the items'
    consented events), with its evaluation. At most one is ``active``: the drain builds the
    visitors' "for you" lists with it. Activation, rollback and retirement: see
    :mod:`recommendations.factorisation`."""

    class Status(models.TextChoices):
        READY = "ready", _("Ready")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")
        FAILED = "failed", _("Failed")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    visitors = models.IntegerField(default=0)
    training_seconds = models.FloatField(default=0.0)
    # recall@10 of the held-out last item (leave-last-out), the model's and popular's.
    metrics = models.JSONField(default=dict, blank=True)
    item_ids = models.JSONField(default=list, blank=True)
    factors = models.BinaryField(blank=True, default=b"")
    regularization = models.FloatField(default=0.05)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="active"),
                name="recommendation_one_active_factor_model",
            )
        ]

    def __str__(self) -> str:
        return f"factor model {self.pk} ({self.status})"
