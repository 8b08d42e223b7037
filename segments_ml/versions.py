"""The model registry: versions, their artifacts, activation and rollback.

Every trained model is a :class:`segments.models.ModelVersion`. One version per model is
active (a partial unique constraint in the database). A version becomes active only if it is not
worse than the active one on the same held-out data (its ``comparison`` records the active
version's metrics on the new version's holdout), or when an editor overrides that explicitly;
rollback re-activates the version that was active before, in one step. Artifacts are written to
Django storage under ``segments/models/`` and their HMAC-SHA256 (keyed by SECRET_KEY) is kept
in the database: a file is unpickled only if it is ours and unchanged.
"""

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .artifacts import ArtifactError, load_artifact, save_artifact
from .conf import get_setting
from .models import MLModel, ModelActivation, ModelVersion

logger = logging.getLogger(__name__)


def parse_as_of(value: str) -> datetime:
    """An ``--as-of`` value: a date (``2011-12-10``: that day's midnight, UTC, so the events of
    that day are left out) or a date and time (UTC unless it carries an offset). Raises
    ``ValueError`` with a message an editor can act on; refuses the future."""
    text = (value or "").strip()
    if not text or len(text) > 40:
        raise ValueError("give a date such as 2011-12-10 (or a date and time).")
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date such as 2011-12-10.") from None
    if timezone.is_naive(instant):
        instant = instant.replace(tzinfo=UTC)
    if instant > timezone.now():
        raise ValueError("the as-of date cannot be in the future.")
    return instant


class ActivationRefused(Exception):
    """Activation or rollback is not allowed; the message says why, in plain words."""


def new_version(
    model: MLModel, *, trigger: str = "manual", user: str = "", as_of: datetime | None = None
) -> ModelVersion:
    """A queued version with the next number (training happens in a worker). ``as_of``: train
    it on the data as it stood at that instant (kept as the version's ``data_end``, which the
    training reads; see :func:`segments_ml.training.train_version`)."""
    if as_of is not None and timezone.is_naive(as_of):
        raise ValueError("as_of must be an aware datetime.")
    if as_of is not None and as_of > timezone.now():
        raise ValueError("as_of cannot be in the future.")
    with transaction.atomic():
        MLModel.objects.select_for_update().get(pk=model.pk)
        number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        return ModelVersion.objects.create(
            model=model, number=number, trigger=trigger, requested_by=user[:150], data_end=as_of
        )


def training_in_progress(model: MLModel) -> bool:
    return model.versions.filter(
        status__in=[ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING]
    ).exists()


def comparison_verdict(version: ModelVersion, active: ModelVersion | None) -> str | None:
    """Why ``version`` may not replace ``active`` without an override (None: it may)."""
    if active is None or active.pk == version.pk:
        return None
    name, new = version.primary_metric
    compared = version.comparison or {}
    if compared.get("version") != active.pk:
        return (
            f"v{version.number} was not compared with the active v{active.number} on the same "
            "held-out data; train again to compare, or override."
        )
    old = (compared.get("metrics") or {}).get(name)
    if new is None or old is None:
        return f"no {name} to compare; override to activate anyway."
    tolerance = float(get_setting("SEGMENTS_ML_ACTIVATION_TOLERANCE"))
    if new + tolerance < old:
        return (
            f"v{version.number} is worse than the active v{active.number} on the same held-out "
            f"data ({name} {new:.3f} against {old:.3f})."
        )
    return None


def activate(
    version: ModelVersion, *, user: str = "", override: bool = False, note: str = ""
) -> ModelActivation:
    """Make ``version`` its model's active version. Raises :class:`ActivationRefused` when it
    is not ready, or worse than the active one on the same holdout without ``override``."""
    with transaction.atomic():
        MLModel.objects.select_for_update().get(pk=version.model_id)
        version.refresh_from_db()
        if version.status != ModelVersion.Status.READY:
            raise ActivationRefused(f"v{version.number} is {version.get_status_display()}.")
        active = version.model.versions.filter(is_active=True).first()
        if active is not None and active.pk == version.pk:
            raise ActivationRefused(f"v{version.number} is already active.")
        verdict = comparison_verdict(version, active)
        if verdict and not override:
            raise ActivationRefused(verdict)
        return _switch(version, active, "activate", user, bool(verdict) and override, note)


def rollback(model: MLModel, *, user: str = "") -> ModelActivation:
    """Re-activate the version that was active before the current one."""
    with transaction.atomic():
        MLModel.objects.select_for_update().get(pk=model.pk)
        active = model.versions.filter(is_active=True).first()
        if active is None:
            raise ActivationRefused("no version is active.")
        last = model.activations.filter(version=active).order_by("-at", "-pk").first()
        previous = last.previous if last else None
        if previous is None or previous.status != ModelVersion.Status.READY:
            raise ActivationRefused(
                f"there is no earlier version to return to from v{active.number}."
            )
        return _switch(previous, active, "rollback", user, False, f"back from v{active.number}")


def deactivate(model: MLModel, *, user: str = "") -> None:
    with transaction.atomic():
        active = model.versions.select_for_update().filter(is_active=True).first()
        if active is not None:
            _active_set_changed()
            active.is_active = False
            active.save(update_fields=["is_active"])
            ModelActivation.objects.create(
                model=model, version=active, previous=active, action="deactivate", by=user[:150]
            )


def _active_set_changed() -> None:
    """This process's scorers see the change at once (other workers within
    scoring.CHECK_SECONDS)."""
    # numpy: the admin's activation screens load it only here
    from . import scoring

    scoring.forget()  # harmless if the transaction rolls back: the next batch asks again


def _switch(version, active, action, user, override, note) -> ModelActivation:
    _active_set_changed()
    if active is not None:
        active.is_active = False
        active.save(update_fields=["is_active"])
    version.is_active = True
    version.save(update_fields=["is_active"])
    return ModelActivation.objects.create(
        model=version.model,
        version=version,
        previous=active,
        action=action,
        override=override,
        by=user[:150],
        note=note[:300],
    )


__all__ = [
    "ActivationRefused",
    "ArtifactError",
    "activate",
    "activate_if_better",
    "comparison_verdict",
    "deactivate",
    "load_artifact",
    "new_version",
    "parse_as_of",
    "rollback",
    "save_artifact",
]


def activate_if_better(version: ModelVersion) -> bool:
    """After a scheduled or drift-triggered retrain: activate ``version`` if the comparison with
    the active one allows it (and SEGMENTS_ML_AUTO_ACTIVATE is on). Returns whether it did."""
    if not get_setting("SEGMENTS_ML_AUTO_ACTIVATE") or version.status != "ready":
        return False
    if not version.model.versions.filter(is_active=True).exists():
        return False  # the first version is activated by an editor
    try:
        activate(version, user=f"auto ({version.trigger})")
    except ActivationRefused as exc:
        logger.info("Not activating %s: %s", version, exc)
        return False
    return True
