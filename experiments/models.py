"""Experiments as editors define them, and what the workers keep about them.

- :class:`Experiment`: what is tested (a personalised block's variants for one segment, a page
  against its page variants, personalised against default content, or the global holdout), how
  visitors are split (weights, coverage, per-experiment holdout, namespace, hash version and an
  assignment version an editor bumps to re-randomise), and how results are read (sequential
  testing, alpha, the minimum detectable effect the plan is sized for).
- :class:`Arm`: one arm, in order; ``key`` says what it shows (a block variant's key, a page
  variant's id, or ``"default"``). The first arm is the control.
- :class:`Goal`: a recorded event that counts (a click, a purchase, a page view of a chosen page),
  read as a conversion rate or a mean per visitor, within a window after the first exposure;
  its role (primary, secondary, guardrail) and its good direction (higher or lower is better).
- :class:`Assignment`: one enrolled visitor (keyed hash, never a raw id): their arm, the
  probability of that arm when they were enrolled (for offline policy evaluation), when they
  were first and last exposed. Written by the workers; the sticky copy the request path reads
  lives in the visitor's hash in the fast store.
- :class:`Statistic`: sufficient statistics per experiment x arm x goal x segment, kept
  incrementally by the workers (results never rescan the event log).
- :class:`SplitCount`: visitors enrolled per arm under each split (the weights, coverage and
  holdout at their enrolment): the sample-ratio check's expected counts.
- :class:`WeightHistory`: a bandit's weights as each reweighting set them.
- :class:`ResultSnapshot`: the analysis as computed at one time (the charts over time).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .covariates import COVARIATES

DEFAULT_KEY = "default"


class Experiment(models.Model):
    class Kind(models.TextChoices):
        BLOCK = "block", _("Variants of a personalised block")
        PAGE = "page", _("A page against its page variants")
        HOLDOUT = "holdout", _("Personalised against default content")
        GLOBAL_HOLDOUT = "global_holdout", _("Global holdout")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        STOPPED = "stopped", _("Stopped")

    class Mode(models.TextChoices):
        FIXED = "fixed", _("Fixed split (A/B/n)")
        BANDIT = "bandit", _("Multi-armed bandit (Thompson sampling)")

    name = models.CharField(_("name"), max_length=200)
    # The hashing seed (GrowthBook's experiment key): never changes once the experiment started.
    key = models.SlugField(_("key"), max_length=100, unique=True)
    description = models.TextField(_("hypothesis"), blank=True)
    kind = models.CharField(_("what is tested"), max_length=20, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, default=Mode.FIXED)

    # Where: the page (a page experiment's canonical page; the page holding a block experiment's
    # block), the block (its StreamField block id) and the segment the test runs inside (none:
    # every consented visitor).
    page = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("page"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    block_id = models.CharField(_("block"), max_length=64, blank=True)
    segment = models.ForeignKey(
        "segments.Segment",
        verbose_name=_("segment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="experiments",
    )

    # How visitors are split (GrowthBook's semantics: experiments.assignment).
    coverage = models.FloatField(_("share of eligible visitors enrolled"), default=1.0)
    holdout_percent = models.FloatField(
        _("holdout (%)"),
        default=0.0,
        help_text=_("Eligible visitors kept on default content and counted as the holdout."),
    )
    hash_version = models.PositiveSmallIntegerField(_("hash version"), default=2)
    assignment_version = models.PositiveIntegerField(
        _("assignment version"),
        default=1,
        help_text=_("Bump it to re-randomise everyone enrolled (their earlier arm is forgotten)."),
    )
    namespace = models.CharField(_("namespace"), max_length=100, blank=True)
    namespace_start = models.FloatField(default=0.0)
    namespace_end = models.FloatField(default=1.0)

    # How results are read.
    sequential = models.BooleanField(_("sequential testing"), default=True)
    sequential_tuning = models.FloatField(_("sequential tuning"), default=5000.0)
    alpha = models.FloatField(_("significance level"), default=0.05)
    minimum_detectable_effect = models.FloatField(_("minimum detectable effect"), default=0.1)
    minimum_sample = models.PositiveIntegerField(
        _("minimum visitors per cell"),
        default=100,
        help_text=_("A figure is shown for an arm and segment only from this many visitors."),
    )

    # Bandits.
    bandit_floor = models.FloatField(_("minimum weight per arm"), default=0.01)
    bandit_minimum = models.PositiveIntegerField(
        _("visitors per arm before the first reweighting"), default=100
    )
    bandit_discount = models.FloatField(
        _("discount of old data"),
        default=1.0,
        help_text=_("1 keeps all data; below 1, each reweighting multiplies older data by it."),
    )

    # A bandit inside no segment learns per segment too: {segment slug: [weight per arm]} for
    # each segment whose visitors reached the minimum in every arm (the reweighting job); new
    # visitors of such a segment are split by its weights, everyone else by the arms' weights.
    segment_weights = models.JSONField(default=dict, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    winner = models.ForeignKey(
        "Arm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        ordering = ["-created_at"]
        permissions = [
            ("run_experiment", _("Can start, pause and stop experiments and promote a winner")),
            ("view_experiment_results", _("Can view experiment results")),
        ]

    def __str__(self) -> str:
        return self.name


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(_("name"), max_length=100)
    # What the arm shows: a block variant's key, a page variant's id, or "default".
    key = models.CharField(_("shows"), max_length=64, default=DEFAULT_KEY)
    weight = models.FloatField(_("weight"), default=1.0)

    class Meta:
        ordering = ["experiment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "index"], name="experiments_arm_index")
        ]

    def __str__(self) -> str:
        return self.name


class Goal(models.Model):
    class Metric(models.TextChoices):
        CONVERSION = "conversion", _("Conversion rate")
        MEAN = "mean", _("Mean per visitor")

    class Role(models.TextChoices):
        PRIMARY = "primary", _("Primary")
        SECONDARY = "secondary", _("Secondary")
        GUARDRAIL = "guardrail", _("Guardrail")

    class Direction(models.TextChoices):
        HIGHER = "higher", _("Higher is better")
        LOWER = "lower", _("Lower is better")

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="goals")
    name = models.CharField(_("name"), max_length=100)
    event = models.CharField(_("event"), max_length=64)
    # Properties the event must have ({"path": "/pricing/"}, {"block": "<id>"}): exact matches.
    match = models.JSONField(_("where"), default=dict, blank=True)
    metric = models.CharField(
        _("metric"), max_length=12, choices=Metric.choices, default=Metric.CONVERSION
    )
    value_property = models.CharField(_("value property"), max_length=64, default="value")
    window_seconds = models.PositiveIntegerField(
        _("conversion window (seconds)"), default=7 * 86400
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.PRIMARY)
    # Which way is better: a guardrail that moves significantly the other way fails (and the
    # chance to win, the verdict and the risk read it the same way for any goal).
    direction = models.CharField(
        _("better when"),
        max_length=6,
        choices=Direction.choices,
        default=Direction.HIGHER,
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["experiment", "order", "pk"]

    def __str__(self) -> str:
        return self.name


# The arm of a visitor enrolled into an experiment's own holdout (default content, counted as
# the holdout: Assignment.arm and Statistic.arm).
HOLDOUT_ARM = -1


class Assignment(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    visitor_key = models.CharField(max_length=64, db_index=True)
    # The arm's index, or HOLDOUT_ARM (-1) for the experiment's own holdout.
    arm = models.SmallIntegerField()
    assignment_version = models.PositiveIntegerField(default=1)
    probability = models.FloatField()
    first_exposed_at = models.DateTimeField()
    last_exposed_at = models.DateTimeField()
    exposures = models.PositiveIntegerField(default=1)
    # The visitor's pre-exposure covariates (COVARIATES, in order), and the segments they were
    # in. ``covariate`` is the first of them, kept alone before the vector was: a row enrolled
    # then has an empty ``covariates`` and counted 0 for the others (covariate_vector).
    covariate = models.FloatField(default=0.0)
    covariates = models.JSONField(default=list, blank=True)
    segments = models.JSONField(default=list, blank=True)
    # The visitor's value of each goal so far ({goal id: y}; absent: 0), kept by the drain so
    # that a later conversion updates the Statistic rows by deltas.
    values = models.JSONField(default=dict, blank=True)
    # The split the visitor was enrolled under (experiments.runtime.split_key: each arm's share,
    # the holdout's included): their enrolment counts in that split's SplitCount row.
    split = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "visitor_key"], name="experiments_assignment_visitor"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.visitor_key[:8]}…:{self.arm}"

    def covariate_vector(self) -> list[float]:
        """The visitor's covariates as their contribution to the statistics counted them: one
        per name of COVARIATES (a row enrolled before the vector was kept: its ``covariate``,
        then zeros)."""
        stored = self.covariates if isinstance(self.covariates, list) else []
        vector = [float(v) for v in stored[: len(COVARIATES)]] or [float(self.covariate)]
        return vector + [0.0] * (len(COVARIATES) - len(vector))


class Statistic(models.Model):
    """Sufficient statistics of one cell (``segment`` "" is everyone): ``n`` visitors, the sums
    of their goal values ``y`` and squares, and for CUPED those of the pre-exposure covariates
    ``x`` (:mod:`experiments.covariates`): the sums of each ``x_i``, of each product
    ``x_i x_j`` (``i <= j``) and of each ``x_i y``. The first covariate's are ``x_sum``,
    ``x_squares`` and ``xy_sum``, as before the vector was kept."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="statistics")
    arm = models.SmallIntegerField()  # HOLDOUT_ARM (-1): the experiment's own holdout
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="statistics")
    segment = models.CharField(max_length=100, blank=True, default="")
    n = models.FloatField(default=0)
    sum = models.FloatField(default=0)
    sum_squares = models.FloatField(default=0)
    x_sum = models.FloatField(default=0)
    x_squares = models.FloatField(default=0)
    xy_sum = models.FloatField(default=0)
    x1_sum = models.FloatField(default=0)
    x2_sum = models.FloatField(default=0)
    x3_sum = models.FloatField(default=0)
    x0x1_sum = models.FloatField(default=0)
    x0x2_sum = models.FloatField(default=0)
    x0x3_sum = models.FloatField(default=0)
    x1x1_sum = models.FloatField(default=0)
    x1x2_sum = models.FloatField(default=0)
    x1x3_sum = models.FloatField(default=0)
    x2x2_sum = models.FloatField(default=0)
    x2x3_sum = models.FloatField(default=0)
    x3x3_sum = models.FloatField(default=0)
    x1y_sum = models.FloatField(default=0)
    x2y_sum = models.FloatField(default=0)
    x3y_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "arm", "goal", "segment"], name="experiments_statistic_cell"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.arm}/{self.goal_id}/{self.segment or '*'}"


class SplitCount(models.Model):
    """Visitors enrolled in ``arm`` while the experiment's split was ``split`` (each arm's share
    among the visitors a hashing enrols, the holdout's included: ``"-1:0.1,0:0.45,1:0.45"``),
    kept incrementally by the workers. An editor's change of the weights, coverage or holdout,
    a bandit's reweighting, a change of EXPERIMENTS_GLOBAL_HOLDOUT each start a new split:
    since assignment is sticky, the arms' visitors are a mix of the splits, and the
    sample-ratio check expects ``sum over splits of (its visitors x its shares)``."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="split_counts"
    )
    split = models.CharField(max_length=1000)
    arm = models.SmallIntegerField()  # HOLDOUT_ARM (-1): the experiment's own holdout
    n = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "split", "arm"], name="experiments_splitcount_cell"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.split}/{self.arm}: {self.n:g}"


class WeightHistory(models.Model):
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="weight_history"
    )
    computed_at = models.DateTimeField()
    weights = models.JSONField()
    # What the next reweighting continues from: each arm's cumulative statistics of the primary
    # goal at this time and their discounted running totals ({"cumulative": [[n, sum, sum
    # squares], ...], "running": [...]}; experiments.tasks).
    state = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "computed_at"]

    def __str__(self) -> str:
        return f"{self.experiment_id} @ {self.computed_at:%Y-%m-%d %H:%M}"


class ResultSnapshot(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    computed_at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        ordering = ["experiment", "computed_at"]

    def __str__(self) -> str:
        return f"{self.experiment_id} @ {self.computed_at:%Y-%m-%d %H:%M}"
