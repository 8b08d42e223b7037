"""Model artifacts in Django storage, verified before they are unpickled.

Only files under ``segments/models/`` whose HMAC-SHA256 (keyed by SECRET_KEY) matches the digest
recorded in the database at training time are ever loaded: a file swapped or altered in storage
is refused, never unpickled.
"""

import hmac
import io
import secrets

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.crypto import salted_hmac

from .models import ModelVersion

ARTIFACT_PREFIX = "segments/models/"


class ArtifactError(Exception):
    """An artifact is missing, outside our folder, or does not match its recorded digest."""


def digest(data: bytes) -> str:
    return salted_hmac("segments_ml.artifact", data, algorithm="sha256").hexdigest()


def save_artifact(version: ModelVersion, obj) -> None:
    """Serialise ``obj`` with joblib into storage and record its digest on ``version``."""
    # joblib comes with scikit-learn: loaded only when an artifact is written
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=3)
    data = buffer.getvalue()
    name = f"{ARTIFACT_PREFIX}{version.model.slug}/v{version.number}-{secrets.token_hex(6)}.joblib"
    version.artifact.save(name.removeprefix("segments/models/"), ContentFile(data), save=False)
    version.artifact_digest = digest(data)


def load_artifact(version: ModelVersion):
    """The version's estimator, after checking the file is under our prefix and its HMAC
    matches the one recorded at training time (never unpickle anything else)."""
    # joblib comes with scikit-learn: loaded only when an artifact is read
    import joblib

    name = version.artifact.name if version.artifact else ""
    if not name or not name.startswith(ARTIFACT_PREFIX) or ".." in name:
        raise ArtifactError(f"{version} has no artifact of ours.")
    if not version.artifact_digest:
        raise ArtifactError(f"{version}'s artifact has no recorded digest.")
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    if not hmac.compare_digest(digest(data), version.artifact_digest):
        raise ArtifactError(f"{version}'s artifact does not match its digest: not loaded.")
    return joblib.load(io.BytesIO(data))
