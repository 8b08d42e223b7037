"""Clustering visitors: standardised (optionally log-transformed) features, K-Means with k chosen
by silhouette over a range (Gaussian mixtures as an alternative), profiles an editor can read,
and cluster identities kept stable across retrains (imports scikit-learn: workers only)."""

import re
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture

from .dataset import MODEL_FEATURES
from .transform import Transform, nearest

SILHOUETTE_SAMPLE = 5_000
# Below this many rows K-Means runs on all of them; above, on samples (see _kmeans).
FULL_KMEANS_ROWS = 50_000
FIT_SAMPLE = 100_000
RESTARTS = 4


@dataclass
class Fit:
    k: int
    method: str
    labels: np.ndarray
    centers: np.ndarray  # standardised space
    silhouette: float
    estimator: object


def _kmeans(Z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    if len(Z) <= FULL_KMEANS_ROWS:
        model = KMeans(k, n_init=1, random_state=seed).fit(Z)
        return model.labels_, model.cluster_centers_, model
    # Large populations: MiniBatchKMeans on a random sample finds the centres, a few full
    # Lloyd iterations on part of it polish them, and every visitor goes to the nearest one.
    rows = np.random.default_rng(seed).choice(len(Z), min(len(Z), FIT_SAMPLE), replace=False)
    rough = MiniBatchKMeans(
        k, n_init=1, batch_size=4096, random_state=seed, max_no_improvement=10
    ).fit(Z[rows])
    model = KMeans(k, init=rough.cluster_centers_, n_init=1, max_iter=20, random_state=seed)
    model.fit(Z[rows[:FULL_KMEANS_ROWS]])
    return nearest(Z, model.cluster_centers_), model.cluster_centers_, model


def _gmm(Z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    sample = Z if len(Z) <= 200_000 else Z[np.random.default_rng(seed).choice(len(Z), 200_000)]
    model = GaussianMixture(k, covariance_type="full", random_state=seed, n_init=2).fit(sample)
    return model.predict(Z), model.means_, model


def choose_k(
    Z: np.ndarray,
    ks: range,
    method: str = "kmeans",
    seed: int = 0,
    progress=None,
    restarts: int = RESTARTS,
) -> tuple[Fit, dict[int, float]]:
    """Fit each k of ``ks`` and keep the one with the best silhouette (on a sample of at most
    SILHOUETTE_SAMPLE rows, the same sample for every k); then try ``restarts`` more
    initialisations of the chosen k and keep the best silhouette (K-Means' own criterion,
    inertia, does not always pick the most separated of its local optima)."""
    fitter = {"kmeans": _kmeans, "gmm": _gmm}[method]
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(Z), SILHOUETTE_SAMPLE, replace=False) if len(Z) > 6_000 else None

    def silhouette(labels: np.ndarray) -> float:
        if len(set(labels.tolist())) < 2:
            return -1.0
        if sample is not None:
            return float(silhouette_score(Z[sample], labels[sample]))
        return float(silhouette_score(Z, labels))

    scores: dict[int, float] = {}
    best: Fit | None = None
    steps = len(ks) + restarts
    for i, k in enumerate(ks):
        if k >= len(Z):
            break
        labels, centers, model = fitter(Z, k, seed)
        score = silhouette(labels)
        scores[k] = round(score, 4)
        if best is None or score > best.silhouette:
            best = Fit(k, method, labels, centers, score, model)
        if progress:
            progress((i + 1) / steps, f"k={k}: silhouette {score:.3f}")
    if best is None or best.silhouette <= -1.0:
        raise ValueError("too few distinct visitors to form clusters.")
    for r in range(1, restarts + 1):
        labels, centers, model = fitter(Z, best.k, seed + r)
        score = silhouette(labels)
        if score > best.silhouette:
            best = Fit(best.k, method, labels, centers, score, model)
            scores[best.k] = round(score, 4)
        if progress:
            progress((len(ks) + r) / steps, f"k={best.k}, restart {r}: silhouette {score:.3f}")
    return best, scores


# -- profiles and names ----------------------------------------------------------------------


def _level(z: float) -> str | None:
    if z >= 1.0:
        return "much higher"
    if z >= 0.4:
        return "higher"
    if z <= -1.0:
        return "much lower"
    if z <= -0.4:
        return "lower"
    return None


def _words(feature: str, z: float) -> str | None:
    level = _level(z)
    if level is None:
        return None
    label = MODEL_FEATURES[feature].label
    if feature.startswith("days_since_last"):  # recency reads better as recent / long ago
        return {
            "much higher": f"{label}: far longer ago than average (lapsed)",
            "higher": f"{label}: longer ago than average",
            "lower": f"{label}: more recent than average",
            "much lower": f"{label}: very recent",
        }[level]
    return f"{label}: {level} than average"


# How a cluster is named (RFM-style). Recency is judged on the typical member's own values
# (the medians), in days, because "long ago" means the same whatever the rest of the data
# looks like: a majority that last bought 491 days ago is lapsed even where that is the
# average. Frequency uses the median number of orders (one order: a one-off buyer), and
# both frequency and money spent are also judged against the other customers (the
# standardised centre, z), since what is "a lot" depends on the shop and its currency.
RECENT_DAYS = 30  # bought (or visited) in the last month: recent
AT_RISK_DAYS = 90  # more than a quarter ago: at risk of lapsing
LAPSED_DAYS = 180  # more than half a year ago: lapsed
LOYAL_ORDERS = 4  # a typical member with this many orders or more is a regular
HIGH_Z = 0.6  # standard deviations above the average: "high" frequency or spend


def _rfm(z: dict[str, float], median: dict[str, float] | None):
    """(recency in days or None, orders or None, frequency z, monetary z, noun)."""
    median = median or {}
    if "days_since_last_purchase" in z:
        recency_name, frequency_name, noun = "days_since_last_purchase", "purchase_count", "buyers"
    elif "days_since_last_seen" in z:
        recency_name, frequency_name, noun = "days_since_last_seen", "sessions", "visitors"
    else:
        return None
    if frequency_name not in z:
        frequency_name = "purchase_count" if "purchase_count" in z else "sessions"
    return (
        recency_name,
        median.get(recency_name),
        median.get(frequency_name),
        z.get(frequency_name),
        z.get("monetary_value"),
        noun,
    )


def suggest_name(z: dict[str, float], median: dict[str, float] | None = None) -> str:
    """A name from the cluster's standardised centre ``z`` and its members' ``median``
    values: RFM archetypes when recency and frequency features are there (see
    :func:`name_reason` for the thresholds), else the most distinctive feature."""
    return _name_and_reason(z, median)[0]


def name_reason(z: dict[str, float], median: dict[str, float] | None = None) -> str:
    """Why :func:`suggest_name` chose its name, in words an editor can check against the
    cluster's medians ("last purchase 491 days ago (over 180: lapsed); 1 order (one-off)")."""
    return _name_and_reason(z, median)[1]


def _name_and_reason(z: dict[str, float], median: dict[str, float] | None) -> tuple[str, str]:
    rfm = _rfm(z, median)
    if rfm is None or (rfm[3] is None and rfm[2] is None):
        name, value = max(z.items(), key=lambda item: abs(item[1]))
        label = MODEL_FEATURES[name].label
        return (
            f"{'high' if value > 0 else 'low'} {label}",
            f"{label}: {value:+.1f} standard deviations from the average",
        )
    recency_name, days, orders, fz, mz, noun = rfm
    if days is None:  # no medians (an older version's profile): judge recency relatively
        rz = z[recency_name]
        days = LAPSED_DAYS + 1 if rz > 1.0 else AT_RISK_DAYS + 1 if rz > 0.5 else RECENT_DAYS
    one_off = orders is not None and orders <= 1
    frequent = (orders is not None and orders >= LOYAL_ORDERS) or (fz or 0.0) >= HIGH_Z
    big = (mz if mz is not None else (fz or 0.0)) >= HIGH_Z
    last = "last purchase" if noun == "buyers" else "last visit"
    what = "order" if noun == "buyers" else "visit"
    parts = [f"{last} {days:.0f} days ago"]
    if days > LAPSED_DAYS:
        parts[0] += f" (over {LAPSED_DAYS}: lapsed)"
        if one_off:
            name = f"lapsed one-off {noun}"
        elif big:
            name = "lapsed big spenders" if noun == "buyers" else "lapsed regulars"
        else:
            name = f"lapsed repeat {noun}"
    elif days > AT_RISK_DAYS:
        parts[0] += f" (over {AT_RISK_DAYS}: at risk)"
        if one_off:
            name = f"one-off {noun} at risk"
        elif frequent or big:
            name = "loyal customers at risk" if noun == "buyers" else "regulars at risk"
        else:
            name = f"{noun} at risk"
    elif days <= RECENT_DAYS:
        parts[0] += f" (within {RECENT_DAYS}: recent)"
        if one_off:
            name = "new customers" if noun == "buyers" else "new visitors"
        elif frequent and big:
            name = "champions"
        elif frequent:
            name = "loyal customers" if noun == "buyers" else "regulars"
        else:
            name = f"recent repeat {noun}"
    else:
        parts[0] += f" ({RECENT_DAYS} to {AT_RISK_DAYS}: neither recent nor at risk)"
        if frequent and big:
            name = "loyal customers" if noun == "buyers" else "regulars"
        elif one_off:
            name = f"one-off {noun}"
        else:
            name = f"occasional {noun}"
    if orders is not None:
        count = f"{orders:.0f} {what}{'' if orders == 1 else 's'}"
        if one_off:
            count += " (one-off)"
        elif orders >= LOYAL_ORDERS:
            count += f" ({LOYAL_ORDERS} or more: frequent)"
        parts.append(count)
    if fz is not None and fz >= HIGH_Z:
        parts.append(f"frequency {fz:+.1f} standard deviations above the average (high)")
    if mz is not None:
        level = "high" if mz >= HIGH_Z else "not high"
        parts.append(f"spend {mz:+.1f} standard deviations from the average ({level})")
    return name, "; ".join(parts)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "cluster"


def profiles(
    X: np.ndarray, labels: np.ndarray, centers: np.ndarray, transform: Transform
) -> list[dict]:
    """Per cluster: size, share, the median of each feature, its standardised centre and the
    distinguishing features in plain words, and a suggested name."""
    out = []
    n = len(X)
    for c in range(len(centers)):
        rows = X[labels == c]
        z = {f: float(v) for f, v in zip(transform.features, centers[c], strict=True)}
        ranked = sorted(z.items(), key=lambda item: -abs(item[1]))
        words = [w for f, v in ranked if (w := _words(f, v))]
        medians = np.median(rows, axis=0) if len(rows) else np.zeros(len(transform.features))
        median = {f: round(float(v), 2) for f, v in zip(transform.features, medians, strict=True)}
        out.append(
            {
                "index": c,
                "size": len(rows),
                "share": round(len(rows) / n, 4) if n else 0.0,
                "name": suggest_name(z, median),
                "name_reason": name_reason(z, median),
                "center": [round(v, 4) for v in centers[c].tolist()],
                "center_log": (centers[c] * transform.scale + transform.mean).tolist(),
                "z": {f: round(v, 3) for f, v in z.items()},
                "median": median,
                "description": words[:4] or ["close to the average visitor"],
            }
        )
    return out


def assign_keys(
    new: list[dict], old: list[dict] | None, transform: Transform, max_distance: float = 1.5
) -> None:
    """Give each new cluster a stable ``key``: matched to the previous version's clusters by the
    Hungarian algorithm on centre distances (old centres expressed in the new version's
    standardisation), a cluster closer than ``max_distance`` keeps the old key, so segments
    mapped to "cluster: champions" keep meaning the same group (its name is the one its profile
    earns now; ``renamed_from`` keeps the old one when they differ); the others get new keys
    from their names. A retired key is never reused for something else."""
    taken: set[str] = set()
    if old and len(old[0].get("center_log", ())) == len(transform.features):
        a = np.array([c["center"] for c in new])
        b = np.array(
            [(np.asarray(c["center_log"]) - transform.mean) / transform.scale for c in old]
        )
        cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] <= max_distance:
                new[r]["key"] = old[c]["key"]
                # The key stays (rules use it); the name follows the cluster's profile now,
                # so a group that has lapsed since is no longer called what it was.
                if old[c].get("name") and old[c]["name"] != new[r]["name"]:
                    new[r]["renamed_from"] = old[c]["name"]
                new[r]["matched_distance"] = round(float(cost[r, c]), 3)
        taken |= {c["key"] for c in old}
    for cluster in new:
        if "key" in cluster:
            continue
        base = slug(cluster["name"])
        key, n = base, 2
        while key in taken:
            key, n = f"{base}-{n}", n + 1
        cluster["key"] = key
        taken.add(key)


def train(
    X: np.ndarray,
    features: list[str],
    *,
    ks: range = range(3, 9),
    method: str = "kmeans",
    log: bool = True,
    previous: list[dict] | None = None,
    seed: int = 0,
    progress=None,
) -> dict:
    """Fit the clustering and describe it: what the registry stores (the estimator is in
    ``estimator``; everything else is plain data)."""
    transform = Transform.fit(X, features, log)
    Z = transform(X)
    best, scores = choose_k(Z, ks, method, seed, progress)
    clusters = profiles(X, best.labels, best.centers, transform)
    assign_keys(clusters, previous, transform)
    return {
        "k": best.k,
        "method": method,
        "silhouette": round(best.silhouette, 4),
        "silhouette_by_k": {str(k): v for k, v in scores.items()},
        "transform": transform.as_dict(),
        "clusters": clusters,
        "estimator": best.estimator,
        "labels": best.labels,
    }


__all__ = [
    "AT_RISK_DAYS",
    "HIGH_Z",
    "LAPSED_DAYS",
    "LOYAL_ORDERS",
    "RECENT_DAYS",
    "assign_keys",
    "choose_k",
    "name_reason",
    "profiles",
    "suggest_name",
    "train",
]
