"""The model benchmarks' measuring side, run in a subprocess with Django set up against a fresh
PostgreSQL database (see bench/ml.py): prints one JSON line of figures."""

import json
import os
import random
import sys
import time
import uuid

os.environ.setdefault("OMP_NUM_THREADS", "1")


def synthetic_rfm(n: int, seed: int = 0):
    """Recency, frequency, monetary value with shop-like distributions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    orders = rng.geometric(0.35, n).astype(float)
    recency = np.minimum(rng.exponential(60, n) * (3 / (orders + 2)) * 3, 400.0)
    monetary = orders * rng.lognormal(3.5, 0.8, n)
    return np.column_stack([recency, orders, monetary])


def synthetic_dataset(n: int, seed: int = 1):
    """Rows of the default propensity features and a label that depends on them."""
    import numpy as np

    from segments_ml import dataset as ds

    rng = np.random.default_rng(seed)
    features = ds.DEFAULT_PROPENSITY_FEATURES
    X = rng.lognormal(1.0, 1.0, (n, len(features)))
    X[:, 0] = rng.exponential(60, n)  # days since last purchase
    logit = 1.2 - 0.03 * X[:, 0] + 0.4 * np.log1p(X[:, 1]) + rng.normal(0, 1, n)
    y = (logit > 0).astype(np.int8)
    keys = [f"v{i // 4}" for i in range(n)]  # four cut-offs per visitor
    cutoffs = np.repeat(np.arange(4.0), n // 4 + 1)[:n]
    return ds.Dataset(features, X, y, cutoffs, keys)


def profiles(n: int, now: float, seed: int = 2):
    from segments.profiles.features import Profile

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = Profile()
        t = now - rng.uniform(30, 300) * 86400
        for i in range(rng.randint(3, 25)):
            name = "purchase" if rng.random() < 0.3 else "page_view"
            p.apply(name, t, (int(t * 1000), i + 1), {"value": 30.0, "order_id": str(i)})
            t += rng.uniform(0.1, 20) * 86400
            if t >= now:
                break
        out.append(p)
    return out


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from segments_ml import clustering, propensity
    from segments_ml import dataset as ds
    from segments_ml.scoring import Scorer
    from segments_ml.transform import Transform

    quick = "--quick" in sys.argv
    result: dict = {"quick": quick}
    n_cluster = 100_000 if quick else 1_000_000
    n_prop = 20_000 if quick else 200_000

    X = synthetic_rfm(n_cluster)
    started = time.perf_counter()
    fitted = clustering.train(X, ds.RFM, ks=range(3, 9))
    result["cluster"] = {
        "rows": n_cluster,
        "seconds": time.perf_counter() - started,
        "k": fitted["k"],
        "silhouette": fitted["silhouette"],
    }
    del X

    data = synthetic_dataset(n_prop)
    started = time.perf_counter()
    model = propensity.fit(data, "hgb")
    result["propensity"] = {"rows": n_prop, "seconds": time.perf_counter() - started}
    started = time.perf_counter()
    propensity.fit(data, "logistic")
    result["propensity"]["baseline_seconds"] = time.perf_counter() - started
    quantiles = propensity.quantiles(propensity.predict(model, data.X[:20_000]))

    # Batch scoring: features computed from stored-profile objects, then one call per model.
    now = time.time()
    sample = profiles(10_000, now)
    prop = Scorer("p", "propensity", 0, list(ds.DEFAULT_PROPENSITY_FEATURES), estimator=model)
    prop.quantiles = np.asarray(quantiles)
    clusters = fitted["clusters"]
    clus = Scorer(
        "c",
        "clustering",
        0,
        list(ds.RFM),
        transform=Transform.from_dict(fitted["transform"]),
        centers=np.array([c["center"] for c in clusters]),
        keys=[c["key"] for c in clusters],
    )
    rounds = 10 if quick else 100
    timings = {"features": 0.0, "propensity": 0.0, "cluster": 0.0}
    for _ in range(rounds):
        t0 = time.perf_counter()
        Xp = ds.feature_matrix(sample, now, prop.features)
        Xc = ds.feature_matrix(sample, now, clus.features)
        t1 = time.perf_counter()
        prop.outputs(Xp)
        t2 = time.perf_counter()
        clus.outputs(Xc)
        t3 = time.perf_counter()
        timings["features"] += t1 - t0
        timings["propensity"] += t2 - t1
        timings["cluster"] += t3 - t2
    scored = rounds * len(sample)
    result["scoring"] = {"visitors": scored, **timings, "seconds": sum(timings.values())}

    result["pipeline"] = pipeline_overhead(model, quantiles, fitted, quick)
    print(json.dumps(result))


def pipeline_overhead(model, quantiles, fitted, quick: bool) -> dict:
    """Per-event cost of process_batch with no model active and with a propensity model and a
    clustering active (same events, same segments, alternating), in this process with the
    embedded backend and the durable log in PostgreSQL."""
    import gc
    import math
    import statistics

    from consent.api import notice_version
    from segments import events
    from segments.api import mirror_consent
    from segments.backends import get_backend
    from segments.backends.base import StreamEntry
    from segments.backends.redis import _pack
    from segments.definitions import enabled_segments
    from segments.models import Segment
    from segments.profiles.features import Profile
    from segments.stream import drain as pipeline
    from segments_ml import scoring
    from segments_ml import versions as registry
    from segments_ml.artifacts import save_artifact
    from segments_ml.models import MLModel, ModelVersion

    backend = get_backend()
    backend.flush()
    rng = random.Random(3)
    # Two populations of 500 visitors with the same behaviour: one always processed with the
    # models active, one always without, so that neither pays for memberships flipping when
    # the models are switched between batches.
    population = {
        active: [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(500)]
        for active in (False, True)
    }
    for key in population[False] + population[True]:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 86400)
    Segment.objects.create(
        name="Engaged",
        slug="engaged",
        rule={"type": "event_count", "event": "page_view", "min": 3, "window": "10m"},
    )
    Segment.objects.create(
        name="Likely", slug="likely", rule={"type": "model", "model": "p", "top_percent": 20}
    )
    Segment.objects.create(
        name="Best", slug="best", rule={"type": "cluster", "model": "c", "cluster": "champions"}
    )
    prop = MLModel.objects.create(
        name="p", slug="p", kind="propensity", target={"event": "purchase", "horizon_days": 90}
    )
    clus = MLModel.objects.create(name="c", slug="c", kind="clustering")
    from segments_ml import dataset as ds

    versions = []
    for m, details, artifact, features in (
        (prop, {"quantiles": quantiles, "background": []}, model, ds.DEFAULT_PROPENSITY_FEATURES),
        (
            clus,
            {"clusters": fitted["clusters"], "transform": fitted["transform"]},
            fitted["estimator"],
            ds.RFM,
        ),
    ):
        v = ModelVersion(
            model=m, number=1, status="ready", details=details, features=list(features)
        )
        save_artifact(v, artifact)
        v.save()
        versions.append(v)
    segments = enabled_segments()
    seq = [0]
    base_ms = int(time.time() * 1000) - 3_600_000

    def batch(active: bool, size: int = 2000) -> list[StreamEntry]:
        keys = population[active]
        out = []
        for _ in range(size):
            seq[0] += 1
            key = keys[rng.randrange(len(keys))]
            name = "purchase" if rng.random() < 0.2 else "page_view"
            ts = (base_ms + seq[0]) / 1000
            event = events.Event(
                visitor_key=key,
                name=name,
                ts=ts,
                event_id=uuid.uuid4().hex,
                properties={"value": 20.0, "order_id": str(seq[0])} if name == "purchase" else {},
            )
            out.append(StreamEntry(f"{base_ms + seq[0]}-0", events.encode(event)))
        return out

    def switch(active: bool) -> None:
        for m in (prop, clus):
            m.refresh_from_db()
            if active and m.active_version is None:
                registry.activate(m.versions.get())
            if not active:
                registry.deactivate(m)
        scoring.active_models()  # load the models now, outside the timed batch

    def timed_batch(active: bool) -> float:
        entries = batch(active)
        gc.collect()  # both sides start from the same garbage-collector state
        t0 = time.perf_counter()
        pipeline.process_batch(backend, 0, entries, segments)
        return (time.perf_counter() - t0) / len(entries) * 1e6  # µs per event

    # Warm up both ways, then pairs of adjacent batches, one without and one with the models
    # (alternating which goes first), so that both sides see the same machine: this 2-core
    # machine's speed drifts by up to 2x over seconds, which a figure from whole runs one after
    # the other mistakes for model cost.
    for active in (False, True, False, True):
        switch(active)
        pipeline.process_batch(backend, 0, batch(active), segments)
    pairs = 8 if quick else 40
    off, on, ratios = [], [], []
    for i in range(pairs):
        times = {}
        for active in (False, True) if i % 2 == 0 else (True, False):
            switch(active)
            times[active] = timed_batch(active)
        off.append(times[False])
        on.append(times[True])
        ratios.append(times[True] / times[False])
    # A pair with the models second and the next with them first: the geometric mean of
    # their two ratios cancels whatever the position in a pair costs; the median over these
    # quadruples leaves out the ones the machine's drift spoilt.
    quads = [math.sqrt(ratios[i] * ratios[i + 1]) for i in range(0, pairs - 1, 2)]
    off_us, on_us = statistics.median(off), statistics.median(on)
    switch(True)  # the stored profile below, with the models' outputs
    pipeline.process_batch(backend, 0, batch(True), segments)
    scored = Profile.from_dict(json.loads(backend.visitor_data(population[True][0]).profile))
    if set(scored.scores) != {"p", "c"}:
        raise RuntimeError(f"the models did not score: {scored.scores}")
    with_scores = len(_pack(json.dumps(scored.to_dict(), separators=(",", ":"))))
    scored.scores = {}
    without = len(_pack(json.dumps(scored.to_dict(), separators=(",", ":"))))
    return {
        "off_us": off_us,
        "on_us": on_us,
        "ratio": statistics.median(quads),
        "pairs": pairs,
        "profile_bytes": with_scores,
        "profile_bytes_without_scores": without,
    }


if __name__ == "__main__":
    main()
