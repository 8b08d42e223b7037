"""Model-driven segments' models: what a model is, its trained versions, who activated which,
and drift checks. Their tables keep the names they had when they belonged to the segments app
(``segments_mlmodel`` ...), so upgrading moved no data (migration 0001)."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from segments.api import MODEL_FEATURES, NAME_RE, model_references


class MLModel(models.Model):
    """A model segments can use: a clustering of visitors or a propensity (will they do X within
    N days?). Its trained versions live in :class:`ModelVersion`; one of them is active."""

    class Kind(models.TextChoices):
        CLUSTERING = "clustering", _("Clustering")
        PROPENSITY = "propensity", _("Propensity")

    ALGORITHMS = {"clustering": ("kmeans", "gmm"), "propensity": ("hgb", "logistic")}

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(
        _("slug"),
        max_length=40,
        unique=True,
        help_text=_("Rules refer to the model by this; keep it stable."),
    )
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    algorithm = models.CharField(
        _("algorithm"),
        max_length=16,
        blank=True,
        help_text=_("kmeans or gmm for clustering, hgb or logistic for propensity (default)."),
    )
    features = models.JSONField(
        _("features"), default=list, blank=True, help_text=_("Empty: the defaults for the kind.")
    )
    target = models.JSONField(
        _("target"),
        default=dict,
        blank=True,
        help_text=_(
            'Propensity only: {"event": "purchase", "horizon_days": 90} or, for churn, '
            '{"event": "purchase", "horizon_days": 90, "absence": true}.'
        ),
    )
    population_event = models.CharField(
        _("population"),
        max_length=64,
        blank=True,
        help_text=_("Only visitors who did this event before (e.g. purchase); empty: everyone."),
    )
    params = models.JSONField(
        _("parameters"),
        default=dict,
        blank=True,
        help_text=_('e.g. {"k_min": 3, "k_max": 8, "log": true} or HistGradientBoosting ones.'),
    )
    training_days = models.PositiveIntegerField(
        _("training window (days)"), default=365, help_text=_("Events read for training.")
    )
    retrain_days = models.PositiveIntegerField(
        _("retrain every (days)"), default=7, help_text=_("0: only when asked or on drift.")
    )
    drift_threshold = models.FloatField(
        _("drift threshold (PSI)"),
        null=True,
        blank=True,
        help_text=_("Retrain when a feature's population stability index exceeds it."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "segments_mlmodel"
        ordering = ["name"]
        verbose_name = _("model")
        verbose_name_plural = _("models")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()

        errors = {}
        algorithms = self.ALGORITHMS.get(self.kind, ())
        if self.algorithm and self.algorithm not in algorithms:
            errors["algorithm"] = _("Use one of: %s.") % ", ".join(algorithms)
        if self.features:
            bad = [f for f in self.features if f not in MODEL_FEATURES]
            if not isinstance(self.features, list) or bad:
                errors["features"] = _("Unknown features %(bad)s; known: %(known)s.") % {
                    "bad": bad,
                    "known": ", ".join(MODEL_FEATURES),
                }
        if self.kind == self.Kind.PROPENSITY:
            target = self.target if isinstance(self.target, dict) else {}
            horizon = target.get("horizon_days")
            if not isinstance(target.get("event"), str) or not NAME_RE.match(target["event"]):
                errors["target"] = _("Name the event to predict, e.g. purchase.")
            elif isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
                errors["target"] = _("horizon_days must be a whole number of days, 1 or more.")
            elif horizon > 180:
                errors["target"] = _("horizon_days can be at most 180.")
        if self.population_event and not NAME_RE.match(self.population_event):
            errors["population_event"] = _("An event name such as purchase.")
        if not isinstance(self.params, dict):
            errors["params"] = _("Parameters are a JSON object.")
        if errors:
            raise ValidationError(errors)

    @property
    def active_version(self) -> "ModelVersion | None":
        return self.versions.filter(is_active=True).first()


class ModelVersion(models.Model):
    """One training of a model: window, features, parameters, held-out metrics, data size and
    the artifact (in Django storage, with its HMAC-SHA256 recorded here and checked before it
    is ever unpickled)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        TRAINING = "training", _("Training")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    trigger = models.CharField(max_length=16, default="manual")
    requested_by = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    split = models.JSONField(default=dict, blank=True)
    features = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    comparison = models.JSONField(
        default=dict, blank=True, help_text=_("The active version's metrics on this holdout.")
    )
    details = models.JSONField(default=dict, blank=True)
    train_rows = models.PositiveIntegerField(default=0)
    holdout_rows = models.PositiveIntegerField(default=0)
    artifact = models.FileField(upload_to="segments/models/", max_length=200, blank=True)
    artifact_digest = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "segments_modelversion"
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="model_version_number"),
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(is_active=True),
                name="one_active_version_per_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} v{self.number}"

    @property
    def primary_metric(self) -> tuple[str, float | None]:
        name = "silhouette" if self.model.kind == MLModel.Kind.CLUSTERING else "roc_auc"
        return name, self.metrics.get(name)


class ModelActivation(models.Model):
    """Who made which version active, when, replacing which (for rollback and audit)."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="activations")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    previous = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, default="activate")
    override = models.BooleanField(default=False)
    by = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "segments_modelactivation"
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.version} at {self.at:%Y-%m-%d %H:%M}"


class DriftCheck(models.Model):
    """The population stability index of each feature of an active version, at a time."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="drift")
    at = models.DateTimeField(auto_now_add=True)
    sampled = models.PositiveIntegerField(default=0)
    psi = models.JSONField(default=dict)
    max_psi = models.FloatField(default=0.0)
    threshold = models.FloatField()
    retrain = models.BooleanField(default=False)

    class Meta:
        db_table = "segments_driftcheck"
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"drift of {self.version} at {self.at:%Y-%m-%d %H:%M}: {self.max_psi:.3f}"


def model_reference_problems(rule) -> list[str]:
    """Messages for model and cluster conditions naming a model (or cluster) that does not
    exist, or a model of the wrong kind."""
    problems = []

    references = model_references(rule)
    if not references:
        return problems
    found = {m.slug: m for m in MLModel.objects.filter(slug__in={r["model"] for r in references})}
    for ref in references:
        where = f"{ref['path']}: " if ref["path"] else ""
        model = found.get(ref["model"])
        if model is None:
            known = ", ".join(MLModel.objects.order_by("slug").values_list("slug", flat=True))
            problems.append(
                f"{where}there is no model {ref['model']!r}"
                + (f"; models: {known}." if known else "; create it under Models first.")
            )
        elif ref["cluster"] is None and model.kind != MLModel.Kind.PROPENSITY:
            problems.append(f"{where}{model.slug} is a clustering: use a cluster condition for it.")
        elif ref["cluster"] is not None:
            if model.kind != MLModel.Kind.CLUSTERING:
                problems.append(f"{where}{model.slug} is not a clustering model.")
                continue
            keys = {
                c.get("key")
                for details in model.versions.filter(status="ready").values_list(
                    "details", flat=True
                )
                for c in (details or {}).get("clusters", [])
            }
            if keys and ref["cluster"] not in keys:
                problems.append(
                    f"{where}{model.slug} has no cluster {ref['cluster']!r}; clusters: "
                    f"{', '.join(sorted(k for k in keys if k))}."
                )
    return problems
