"""Model-driven segments, pure parts: point-in-time datasets, k selection, stable cluster keys,
drift, and the model and cluster rule nodes."""

import numpy as np
import pytest

from segments.profiles.features import Profile
from segments.rules import RuleError, compile_rule, model_references
from segments_ml import clustering, drift
from segments_ml import dataset as ds
from segments_ml.transform import Transform, nearest
from tests.segments_ml.builders import DAY, customers

NOW = 1_700_000_000.0


def visitor(*events):
    return [("v1", list(events))]


def test_features_are_as_of_the_cutoff_and_labels_come_after_it():
    cutoff = NOW
    source = visitor(
        ("purchase", cutoff - 10 * DAY, {"value": 5.0, "order_id": "a"}),
        ("purchase", cutoff - 1, {"value": 7.0, "order_id": "b"}),
        ("purchase", cutoff, {"value": 1000.0, "order_id": "c"}),  # at the cut-off: after
        ("purchase", cutoff + 5 * DAY, {"value": 1000.0, "order_id": "d"}),
    )
    features = ["purchase_count", "monetary_value", "days_since_last_purchase"]
    data = ds.build(source, [cutoff], features, ds.Target("purchase", 3))
    assert data.X.tolist() == [[2.0, 12.0, pytest.approx(1 / DAY)]]
    assert data.y.tolist() == [1]  # the purchase at the cut-off is in the label window

    later = ds.build(source, [cutoff + 1], features, ds.Target("purchase", 3))
    assert later.X[0, :2].tolist() == [3.0, 1012.0]
    assert later.y.tolist() == [0]  # day 5 is beyond the 3-day horizon


def test_changing_the_future_changes_labels_never_features():
    past = [("purchase", NOW - 50 * DAY, {"value": 10.0}), ("page_view", NOW - DAY, {})]
    a = ds.build(visitor(*past), [NOW], ds.DEFAULT_PROPENSITY_FEATURES, ds.Target("purchase", 30))
    future = [("purchase", NOW + t * DAY, {"value": 999.0}) for t in (1, 2, 40)]
    b = ds.build(
        visitor(*past, *future), [NOW], ds.DEFAULT_PROPENSITY_FEATURES, ds.Target("purchase", 30)
    )
    assert np.array_equal(a.X, b.X)
    assert (a.y.tolist(), b.y.tolist()) == ([0], [1])
    churn = ds.build(visitor(*past), [NOW], ["sessions"], ds.Target("purchase", 30, absence=True))
    assert churn.y.tolist() == [1]


def test_visitors_unseen_before_a_cutoff_or_without_the_required_event_get_no_row():
    source = [
        ("early", [("purchase", NOW - 5 * DAY, {})]),
        ("late", [("purchase", NOW + DAY, {})]),
        ("browser", [("page_view", NOW - DAY, {})]),
    ]
    data = ds.build(source, [NOW], ["sessions"])
    assert data.keys == ["early", "browser"]
    assert ds.build(source, [NOW], ["sessions"], require="purchase").keys == ["early"]


def test_time_split_keeps_training_labels_before_the_holdout():
    split = ds.TimeSplit.ending_at(NOW, 30 * DAY, windows=3, step=10 * DAY)
    assert split.holdout_cutoff == NOW - 30 * DAY
    assert max(split.train_cutoffs) + 30 * DAY <= split.holdout_cutoff
    with pytest.raises(ValueError, match="overlaps"):
        ds.TimeSplit((NOW - 10 * DAY,), NOW, 30 * DAY)
    with pytest.raises(ValueError, match="unknown model feature"):
        ds.build([], [NOW], ["no_such_feature"])


def blobs(centres, n=150, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(c, 0.3, size=(n, len(c))) for c in centres])


FEATURES = ["sessions", "cart_items"]  # not log-transformed by the tests (log=False)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_silhouette_chooses_the_number_of_well_separated_groups(k):
    centres = [(0, 0), (6, 0), (0, 6), (6, 6), (12, 3)][:k]
    X = blobs(centres)
    fitted = clustering.train(X, FEATURES, ks=range(2, 8), log=False)
    assert fitted["k"] == k
    assert fitted["silhouette"] == max(fitted["silhouette_by_k"].values())
    sizes = sorted(c["size"] for c in fitted["clusters"])
    assert sizes == [150] * k


def test_gaussian_mixture_is_an_alternative():
    X = blobs([(0, 0), (6, 0), (0, 6)])
    fitted = clustering.train(X, FEATURES, ks=range(2, 6), method="gmm", log=False)
    assert fitted["k"] == 3 and fitted["method"] == "gmm"


def test_cluster_keys_survive_a_retrain_on_new_data():
    centres = [(0, 0), (6, 0), (0, 6)]
    first = clustering.train(blobs(centres, seed=1), FEATURES, ks=range(3, 4), log=False)
    # Retrain: new sample, groups in another order, slightly moved, one new far group.
    moved = [(0.3, 6.2), (0.2, -0.1), (6.1, 0.2), (14, 14)]
    second = clustering.train(
        blobs(moved, seed=2), FEATURES, ks=range(4, 5), log=False, previous=first["clusters"]
    )
    transform = Transform.from_dict(second["transform"])
    old = {c["key"]: np.asarray(c["center_log"]) for c in first["clusters"]}
    new = {c["key"]: np.asarray(c["center_log"]) for c in second["clusters"]}
    assert set(old) < set(new) and len(new) == 4
    for k, centre in old.items():  # each old key now names the group at the same place
        assert np.linalg.norm((new[k] - centre) / transform.scale) < 0.5
    (extra,) = set(new) - set(old)
    assert extra not in old
    # A retired key is not given to another cluster later.
    third = clustering.train(
        blobs([(14, 14), (30, 30)], seed=3),
        FEATURES,
        ks=range(2, 3),
        log=False,
        previous=second["clusters"],
    )
    keys = [c["key"] for c in third["clusters"]]
    assert extra in keys and len(set(keys)) == 2
    assert not (set(keys) - {extra}) & set(old)


def test_profiles_read_as_plain_words_and_rfm_clusters_get_names():
    source = customers(60, 140, NOW, seed=4)
    data = ds.build(source, [NOW], ds.RFM, require="purchase")
    fitted = clustering.train(data.X, ds.RFM, ks=range(2, 5))
    names = {c["name"] for c in fitted["clusters"]}
    assert names & {"champions", "loyal customers", "regulars"}
    for c in fitted["clusters"]:
        assert c["description"] and all(isinstance(w, str) for w in c["description"])
        assert c["key"] == clustering.slug(c["name"]) or c["key"].startswith(
            clustering.slug(c["name"])
        )


def test_nearest_centre_scoring_matches_the_fit():
    X = blobs([(0, 0), (6, 0), (0, 6)])
    fitted = clustering.train(X, FEATURES, ks=range(3, 4), log=False)
    transform = Transform.from_dict(fitted["transform"])
    centres = np.array([c["center"] for c in fitted["clusters"]])
    assert np.array_equal(nearest(transform(X), centres), fitted["labels"])


def test_population_stability_index():
    rng = np.random.default_rng(0)
    reference = drift.reference_bins(rng.normal(0, 1, (5000, 1)), ["sessions"])
    same = drift.psi(reference, rng.normal(0, 1, (5000, 1)), ["sessions"])["sessions"]
    shifted = drift.psi(reference, rng.normal(1, 1, (5000, 1)), ["sessions"])["sessions"]
    assert same < 0.02 < 0.2 < shifted


def scored(**scores):
    return Profile(scores=scores)


def test_model_nodes_compare_scores_and_ranks():
    rule = compile_rule({"type": "model", "model": "buys-again", "op": "gte", "value": 0.6})
    assert rule(scored(**{"buys-again": [0.72, 88]}), NOW).matched
    out = rule(scored(**{"buys-again": [0.41, 40]}), NOW)
    assert not out.matched
    assert out.reasons == ("buys again score is 0.41, not ≥ 0.6 (0.19 too low)",)
    assert rule(Profile(), NOW).reasons == ("not scored by buys again yet",)

    top = compile_rule({"type": "model", "model": "buys-again", "top_percent": 10})
    assert top(scored(**{"buys-again": [0.9, 95]}), NOW).matched
    assert top(scored(**{"buys-again": [0.9, 90]}), NOW).matched
    miss = top(scored(**{"buys-again": [0.5, 70]}), NOW)
    assert not miss.matched
    assert miss.reasons == (
        "buys again score 0.5 ranks in the top 30%, not in the top 10% required "
        "(20 percentile points short)",
    )


def test_cluster_nodes():
    rule = compile_rule({"type": "cluster", "model": "rfm", "cluster": "champions"})
    assert rule(scored(rfm="champions"), NOW).reasons == ("in the champions cluster of rfm",)
    out = rule(scored(rfm="lapsed"), NOW)
    assert not out.matched and out.reasons == ("in the lapsed cluster of rfm, not champions",)
    assert not rule(Profile(), NOW).matched


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"type": "model", "op": "gte", "value": 0.5}, "'model' must be a model's slug"),
        ({"type": "model", "model": "Bad Slug!", "top_percent": 5}, "'model' must be"),
        ({"type": "model", "model": "m", "op": "gte", "value": 5}, "between 0 and 1"),
        ({"type": "model", "model": "m", "top_percent": 0}, "above 0 and below 100"),
        ({"type": "model", "model": "m", "top_percent": 10, "op": "gte"}, "not both"),
        ({"type": "model", "model": "m", "op": "regex", "value": "x"}, "'op' must be one of"),
        ({"type": "cluster", "model": "m"}, "'cluster' must be a cluster's key"),
    ],
)
def test_model_node_validation_messages(node, message):
    with pytest.raises(RuleError, match=message):
        compile_rule({"type": "all", "conditions": [node]})


def test_model_references_are_found_anywhere_in_the_tree():
    tree = {
        "type": "all",
        "conditions": [
            {"type": "not", "condition": {"type": "cluster", "model": "rfm", "cluster": "x"}},
            {"type": "model", "model": "churn", "top_percent": 5},
        ],
    }
    assert model_references(tree) == [
        {"model": "rfm", "cluster": "x", "path": "conditions[0].condition"},
        {"model": "churn", "cluster": None, "path": "conditions[1]"},
    ]


def test_scores_round_trip_in_the_compact_profile():
    profile = scored(**{"buys-again": [0.123, 45], "rfm": "champions"})
    again = Profile.from_dict(profile.to_dict())
    assert again.scores == {"buys-again": [0.123, 45], "rfm": "champions"}
    assert "m" not in Profile().to_dict()


def test_the_batch_feature_matrix_equals_feature_by_feature():
    source = customers(20, 20, NOW, seed=6)
    profiles = [p for _, p in ds.profiles_at(source, NOW)] + [Profile()]  # and no history
    names = list(ds.MODEL_FEATURES)
    fast = ds.feature_matrix(profiles, NOW, names)
    slow = np.array([ds.feature_row(p, NOW, names) for p in profiles])
    assert np.allclose(fast, slow)
    assert fast[:, names.index("purchases_180d")].sum() > 0
    assert fast[-1, names.index("days_since_last_purchase")] == ds.MAX_DAYS
    assert ds.feature_matrix([], NOW, names).shape == (0, len(names))


def synthetic_training(n=600, seed=3):
    rng = np.random.default_rng(seed)
    features = ds.DEFAULT_PROPENSITY_FEATURES
    X = rng.lognormal(1.0, 1.0, (n, len(features)))
    y = (np.log1p(X[:, 1]) - 0.02 * X[:, 0] + rng.normal(0, 0.5, n) > 1.0).astype(np.int8)
    return ds.Dataset(features, X, y, np.zeros(n), [f"v{i}" for i in range(n)])


@pytest.mark.parametrize("algorithm", ["hgb", "logistic"])
def test_the_calibrated_shortcut_scores_like_predict_proba(algorithm):
    from segments_ml import propensity, scoring

    data = synthetic_training()
    model = propensity.fit(data, algorithm)
    shortcut = scoring.platt_shortcut(model, data.X, data.features)
    assert shortcut is not None
    fresh = synthetic_training(200, seed=4).X
    fresh[0, 0] = np.nan  # outputs() cleans missing values first, both ways
    slow = scoring.Scorer("p", "propensity", 1, data.features, estimator=model)
    slow.quantiles = np.linspace(0, 1, 101)
    fast = scoring.Scorer("p", "propensity", 1, data.features, estimator=model)
    fast.quantiles, fast.probability = slow.quantiles, shortcut
    assert fast.outputs(fresh) == slow.outputs(fresh)
    assert np.allclose(
        shortcut(np.nan_to_num(fresh)), model.predict_proba(np.nan_to_num(fresh))[:, 1]
    )


def test_the_shortcut_is_refused_when_it_disagrees_with_the_model():
    from segments_ml import propensity, scoring

    data = synthetic_training()
    model = propensity.fit(data, "hgb")

    class Other:  # same inner parts, different probabilities: the shortcut would lie
        calibrated_classifiers_ = model.calibrated_classifiers_

        def predict_proba(self, X):
            p = model.predict_proba(X)
            return np.column_stack([1 - p[:, 1] / 2, p[:, 1] / 2])

    assert scoring.platt_shortcut(Other(), data.X, data.features) is None
    assert scoring.platt_shortcut(object(), data.X, data.features) is None  # not calibrated
