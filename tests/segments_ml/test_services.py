"""Model-driven segments against real PostgreSQL and Redis: training from the event log,
the registry's activation rules, verified artifacts, drift, scoring in the pipeline and
explanations."""

import json
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from consent.api import notice_version
from consent.log import append_records
from consent.models import ConsentRecord, ErasureRequest
from segments import events
from segments.api import exchange, mirror_consent
from segments.models import MembershipChange, Segment
from segments.profiles.features import Profile
from segments.reporting import insights
from segments.stream import drain as pipeline
from segments_ml import dataset as ds
from segments_ml import monitoring, scoring, tasks
from segments_ml import versions as registry
from segments_ml.artifacts import ArtifactError, load_artifact
from segments_ml.models import DriftCheck, MLModel, ModelVersion
from segments_ml.training import train_version
from tests.builders import segment
from tests.segments_ml.builders import DAY, customers, store

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh_scorers():
    scoring.forget()
    yield
    scoring.forget()


@pytest.fixture
def shop():
    return store(customers(60, 90, time.time() - 3600, seed=7))


def propensity_model(**fields) -> MLModel:
    return MLModel.objects.create(
        name="Buys again",
        slug="buys-again",
        kind="propensity",
        target={"event": "purchase", "horizon_days": 30},
        population_event="purchase",
        **fields,
    )


def cluster_model() -> MLModel:
    return MLModel.objects.create(
        name="RFM",
        slug="rfm",
        kind="clustering",
        population_event="purchase",
        params={"k_min": 2, "k_max": 4},
    )


def trained(model: MLModel, **kwargs) -> ModelVersion:
    version = train_version(registry.new_version(model).pk, **kwargs)
    assert version.status == "ready", version.error
    return version


def test_training_data_leaves_out_withdrawn_and_erased_visitors(shop):
    withdrawn, erased = shop[0], shop[1]
    append_records(
        [withdrawn],
        granted=frozenset(),
        denied=frozenset({"personalization"}),
        method=ConsentRecord.Method.WITHDRAW,
    )
    ErasureRequest.objects.create(
        visitor_key=erased, reason="request", due_at=timezone.now() + timedelta(days=1)
    )
    keys = [k for k, _ in ds.event_log()]
    assert len(keys) == len(shop) - 2
    assert withdrawn not in keys and erased not in keys
    assert keys == sorted(keys)  # streamed by visitor, events in time order
    for _, events_ in ds.event_log(since=timezone.now() - timedelta(days=30)):
        assert all(ts >= time.time() - 30 * DAY - 5 for _, ts, _ in events_)


def test_a_propensity_version_is_trained_from_the_event_log(shop):
    model = propensity_model()
    version = trained(model)
    m = version.metrics
    assert m["algorithm"] == "hgb" and m["baseline"]["algorithm"] == "logistic"
    assert m["roc_auc"] > 0.75 and 0 < m["pr_auc"] <= 1 and m["lift_top_decile"] > 1
    assert {"brier", "ece", "roc_curve", "calibration", "lift_by_decile"} <= set(m)
    assert version.train_rows > version.holdout_rows > 100
    split = version.split
    assert split["target"] == {"event": "purchase", "horizon_days": 30, "absence": False}
    assert max(split["train_cutoffs"]) < split["holdout_cutoff"]
    assert len(version.details["quantiles"]) == 101
    assert version.artifact.name.startswith("segments/models/buys-again/v1-")
    estimator = load_artifact(version)
    assert hasattr(estimator, "predict_proba")
    assert version.progress == 1.0 and version.finished_at is not None


def test_an_artifact_is_only_loaded_when_it_is_ours_and_unchanged(shop):
    version = trained(cluster_model())
    name = version.artifact.name
    default_storage.delete(name)
    default_storage.save(name, ContentFile(b"not the pickle we wrote"))
    with pytest.raises(ArtifactError, match="does not match"):
        load_artifact(version)
    version.artifact.name = "elsewhere/evil.joblib"
    with pytest.raises(ArtifactError, match="no artifact of ours"):
        load_artifact(version)


def test_a_failed_training_says_why():
    model = propensity_model()  # no events at all
    version = train_version(registry.new_version(model).pk)
    assert version.status == "failed" and "not enough history" in version.error


def test_activation_needs_a_version_no_worse_on_the_same_holdout(shop):
    model = propensity_model()
    v1 = trained(model)
    registry.activate(v1, user="editor")
    v2 = trained(model)
    assert v2.comparison["version"] == v1.pk  # the active one, scored on v2's holdout
    assert v2.comparison["metrics"]["roc_auc"] > 0.7

    v2.metrics = {**v2.metrics, "roc_auc": v2.comparison["metrics"]["roc_auc"] - 0.05}
    v2.save()
    with pytest.raises(registry.ActivationRefused, match="worse than the active v1"):
        registry.activate(v2)
    assert model.active_version == v1
    log = registry.activate(v2, user="editor", override=True, note="trying it")
    assert log.override and log.previous == v1 and model.active_version == v2

    back = registry.rollback(model, user="editor")
    assert back.action == "rollback" and model.active_version == v1
    assert ModelVersion.objects.filter(model=model, is_active=True).count() == 1

    v3 = trained(model)
    v3.comparison = {**v3.comparison, "version": v2.pk}  # compared with another version
    v3.save()
    with pytest.raises(registry.ActivationRefused, match="not compared"):
        registry.activate(v3)
    with pytest.raises(registry.ActivationRefused, match="already active"):
        registry.activate(v1)


def test_rollback_needs_an_earlier_version(shop):
    model = cluster_model()
    with pytest.raises(registry.ActivationRefused, match="no version is active"):
        registry.rollback(model)
    registry.activate(trained(model))
    with pytest.raises(registry.ActivationRefused, match="no earlier version"):
        registry.rollback(model)


def test_a_retrained_clustering_keeps_cluster_keys_and_is_compared(shop):
    model = cluster_model()
    v1 = trained(model)
    registry.activate(v1)
    v2 = trained(model)
    assert {c["key"] for c in v1.details["clusters"]} == {c["key"] for c in v2.details["clusters"]}
    assert v2.comparison["metrics"]["silhouette"] == pytest.approx(
        v2.metrics["silhouette"], abs=0.02
    )
    registry.activate(v2)


def _profiles(source, now):
    return [p for _, p in ds.profiles_at(source, now)]


def test_drift_above_the_threshold_queues_a_retrain(shop, django_capture_on_commit_callbacks):
    model = propensity_model()
    version = trained(model)
    registry.activate(version)
    # The reference is the population at the held-out cut-off (30 days ago): another sample of
    # the same shop seen at that moment does not drift.
    hold = time.time() - 30 * DAY
    similar = _profiles(customers(60, 90, time.time() - 3600, seed=8), hold)
    check = monitoring.check(version, similar, hold)
    assert not check.retrain and check.max_psi < check.threshold, sorted(
        check.psi.items(), key=lambda i: -i[1]
    )[:4]
    assert not registry.training_in_progress(model)

    # Everyone became a one-off buyer long ago: the population moved.
    now = time.time()
    moved = _profiles(customers(0, 150, now - 200 * DAY, seed=9), now)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        check = monitoring.check(version, moved, now)
        tasks.retrain_drifted([check])  # what the daily drift task does with the verdict
    assert check.retrain and check.max_psi > 0.2
    assert model.versions.filter(status="queued", trigger="drift").count() == 1
    assert len(callbacks) == 1  # the training task, sent after commit
    # While that retrain is pending, more drift queues nothing more.
    assert not monitoring.check(version, moved, now).retrain
    assert DriftCheck.objects.filter(version=version).count() == 3


def test_the_schedule_retrains_models_in_use_when_due(shop, django_capture_on_commit_callbacks):
    model = propensity_model(retrain_days=7)
    version = trained(model)
    assert tasks.retrain_due() == []  # not in use yet
    registry.activate(version)
    assert tasks.retrain_due() == []  # trained today
    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(days=8))
    with django_capture_on_commit_callbacks(execute=False):
        assert tasks.retrain_due() == ["buys-again"]
    assert model.versions.filter(trigger="schedule", status="queued").exists()


KEY = "0123456789abcdef0123456789abcdef"


def _buy(key, ts, order):
    return exchange(
        key,
        events.Event(
            visitor_key=key, name="purchase", ts=ts, properties={"value": 60.0, "order_id": order}
        ),
    )


def test_the_pipeline_scores_visitors_and_model_segments_follow(shop, backend):
    propensity = propensity_model()
    rfm = cluster_model()
    registry.activate(trained(propensity))
    clusters = trained(rfm)
    registry.activate(clusters)
    best = max(clusters.details["clusters"], key=lambda c: c["median"]["purchase_count"])
    segment("likely", {"type": "model", "model": "buys-again", "op": "gte", "value": 0.5})
    segment("top", {"type": "model", "model": "buys-again", "top_percent": 50})
    segment("best", {"type": "cluster", "model": "rfm", "cluster": best["key"]})
    other = next(c for c in clusters.details["clusters"] if c["key"] != best["key"])
    segment("other", {"type": "cluster", "model": "rfm", "cluster": other["key"]})

    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    for i, days in enumerate((60, 45, 30, 20, 10, 2)):  # a loyal customer
        _buy(KEY, now - days * DAY, f"o{i}")
    assert pipeline.drain_partition(backend.partition_for(KEY)).processed == 6

    profile = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile))
    score, rank = profile.scores["buys-again"]
    assert score > 0.5 and 50 <= rank <= 100
    assert profile.scores["rfm"] == best["key"]
    assert exchange(KEY).segments_at(time.time()) == {"likely", "top", "best"}
    reasons = dict(
        MembershipChange.objects.filter(visitor_key=KEY).values_list("segment", "reason")
    )
    assert reasons["best"] == f"in the {best['key']} cluster of rfm"
    assert reasons["likely"].startswith("buys again score is ")

    # Explanations: the rule's reasons and the model's top contributing features.
    explained = {e["segment"]: e for e in insights.explain(KEY)}
    factors = explained["likely"]["model_factors"]["buys-again"]
    assert factors and all("score by" in f["words"] for f in factors)
    assert explained["best"]["model_factors"]["rfm"][0]["words"].count("typical of") == 1
    # Not in "other": the reasons and the factors say what keeps them out (issue #12).
    assert explained["other"]["member"] is False
    assert explained["other"]["because"] == (
        f"not in other because: in the {best['key']} cluster of rfm, not {other['key']}"
    )
    for factor in explained["other"]["model_factors"]["rfm"]:
        assert "typical of" not in factor["words"]
        assert f"away from the required {other['key']}" in factor["words"]
    # As of a past date: rebuilt from the log and scored by the active models then.
    then = {
        e["segment"]: e for e in insights.explain(KEY, as_of=timezone.now() - timedelta(days=15))
    }
    assert "not scored" not in then["likely"]["because"]
    assert (
        then["best"]["because"].endswith(" cluster of rfm") or ", not " in then["best"]["because"]
    )

    # Deactivated: the next batch drops the model's outputs and its segments empty.
    registry.deactivate(propensity)
    _buy(KEY, time.time(), "o9")
    pipeline.drain_partition(backend.partition_for(KEY))
    profile = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile))
    assert "buys-again" not in profile.scores and profile.scores["rfm"]
    assert exchange(KEY).segments_at(time.time()) == {"best"}


def test_the_nightly_rescore_updates_stored_visitors(shop, backend):
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    _buy(KEY, time.time() - DAY, "a")
    pipeline.drain_partition(backend.partition_for(KEY))
    assert Profile.from_dict(json.loads(backend.visitor_data(KEY).profile)).scores == {}
    segment("likely", {"type": "model", "model": "buys-again", "op": "gte", "value": 0.01})
    registry.activate(trained(propensity_model()))
    assert tasks.rescore() >= 1
    profile = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile))
    assert "buys-again" in profile.scores
    assert exchange(KEY).segments_at(time.time()) == {"likely"}


def test_segments_naming_unknown_models_or_clusters_are_refused(shop):
    rfm = cluster_model()
    trained(rfm)
    propensity_model()
    cases = [
        ({"type": "model", "model": "nope", "top_percent": 5}, "there is no model 'nope'"),
        ({"type": "model", "model": "rfm", "top_percent": 5}, "rfm is a clustering"),
        ({"type": "cluster", "model": "buys-again", "cluster": "x"}, "not a clustering model"),
        ({"type": "cluster", "model": "rfm", "cluster": "nope"}, "has no cluster 'nope'"),
    ]
    for rule, message in cases:
        with pytest.raises(ValidationError, match=message):
            Segment(name="x", slug="x", rule=rule).full_clean()
    key = rfm.versions.get().details["clusters"][0]["key"]
    Segment(
        name="x", slug="x", rule={"type": "cluster", "model": "rfm", "cluster": key}
    ).full_clean()


def test_model_settings_are_validated():
    bad = MLModel(
        name="m",
        slug="m",
        kind="propensity",
        target={"event": "purchase"},
        algorithm="kmeans",
        features=["nope"],
    )
    with pytest.raises(ValidationError) as exc:
        bad.full_clean()
    assert set(exc.value.message_dict) == {"target", "algorithm", "features"}


def _scored_member(backend):
    """A loyal customer scored by both models, a member of a segment of each."""
    propensity, rfm = propensity_model(), cluster_model()
    registry.activate(trained(propensity))
    clusters = trained(rfm)
    registry.activate(clusters)
    best = max(clusters.details["clusters"], key=lambda c: c["median"]["purchase_count"])
    segment("likely", {"type": "model", "model": "buys-again", "op": "gte", "value": 0.5})
    segment("best", {"type": "cluster", "model": "rfm", "cluster": best["key"]})
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    for i, days in enumerate((60, 45, 30, 20, 10, 2)):
        _buy(KEY, now - days * DAY, f"o{i}")
    pipeline.drain_partition(backend.partition_for(KEY))
    assert exchange(KEY).segments_at(time.time()) == {"likely", "best"}
    return propensity, rfm


def _new_worker():
    scoring.forget()  # as a worker started now, or after the set of active versions changed


def test_a_corrupt_artifact_stops_only_its_own_model(shop, backend, caplog):
    propensity, _rfm = _scored_member(backend)
    version = propensity.versions.get(is_active=True)
    default_storage.delete(version.artifact.name)
    default_storage.save(version.artifact.name, ContentFile(b"truncated by a full disk"))
    _new_worker()
    before = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile)).scores["buys-again"]
    for n in range(2):  # logged once, not once per batch
        _buy(KEY, time.time(), f"after{n}")
        assert pipeline.drain_partition(backend.partition_for(KEY)).processed == 1
    assert backend.pending_partitions() == []
    profile = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile))
    assert profile.scores["buys-again"] == before  # held: not dropped as for a deactivation
    assert profile.scores["rfm"]  # the other model still scores
    assert exchange(KEY).segments_at(time.time()) == {"likely", "best"}
    assert not MembershipChange.objects.filter(entered=False).exists()
    assert caplog.text.count("Could not load buys-again") == 1
    assert KEY not in caplog.text


def test_a_version_using_a_feature_no_longer_in_the_catalog_stops_only_itself(shop, backend):
    _propensity, rfm = _scored_member(backend)
    ModelVersion.objects.filter(model=rfm, is_active=True).update(
        features=["purchase_count", "loyalty_tier"]  # a feature since removed from the catalog
    )
    _new_worker()
    before = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile)).scores
    newcomer = "fedcba9876543210fedcba9876543210"
    mirror_consent(newcomer, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    _buy(KEY, time.time(), "later")
    _buy(newcomer, time.time(), "first")
    for key in (KEY, newcomer):
        pipeline.drain_partition(backend.partition_for(key))
    assert backend.pending_partitions() == []
    profile = Profile.from_dict(json.loads(backend.visitor_data(KEY).profile))
    assert profile.scores["rfm"] == before["rfm"]  # held
    assert exchange(KEY).segments_at(time.time()) == {"likely", "best"}
    scores = Profile.from_dict(json.loads(backend.visitor_data(newcomer).profile)).scores
    assert "buys-again" in scores and "rfm" not in scores  # the other model still scores


def test_a_profile_scorer_that_raises_does_not_fail_the_batch(backend, monkeypatch):
    from segments import extensions

    def broken(profiles, now):
        raise MemoryError("model too big for this worker")

    monkeypatch.setitem(extensions.extensions.scorers, "broken", broken)
    segment("buyer", {"type": "event_count", "event": "purchase", "min": 1, "window": "1h"})
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    _buy(KEY, time.time(), "a")
    assert pipeline.drain_partition(backend.partition_for(KEY)).processed == 1
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}
