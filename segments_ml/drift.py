"""Drift: the population stability index (PSI) of each feature between the population a version
was trained on and the visitors' current profiles (numpy only).

PSI = sum over bins of (current share - reference share) * ln(current / reference), with bins
at the reference's deciles. Under 0.1 the population is stable, 0.1-0.25 it moved, above 0.25
it changed (the usual reading); SEGMENTS_ML_DRIFT_THRESHOLD (0.2 by default, or a model's own
threshold) triggers a retrain.
"""

import numpy as np

EPSILON = 1e-4


def reference_bins(X: np.ndarray, features: list[str], bins: int = 10) -> dict:
    """Bin edges (the reference's quantiles) and the reference's share in each bin."""
    out = {}
    for j, name in enumerate(features):
        column = np.asarray(X[:, j], dtype=np.float64)
        edges = (
            np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1])) if len(column) else []
        )
        out[name] = {
            "edges": [float(e) for e in edges],
            "shares": _shares(column, np.asarray(edges)).round(6).tolist(),
        }
    return out


def _shares(column: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
    return counts / max(len(column), 1)


def psi(reference: dict, X: np.ndarray, features: list[str]) -> dict[str, float]:
    """Each feature's PSI between the reference bins and the rows of ``X``."""
    result = {}
    for j, name in enumerate(features):
        ref = reference.get(name)
        if ref is None:
            continue
        expected = np.clip(np.asarray(ref["shares"], dtype=np.float64), EPSILON, None)
        actual = np.clip(_shares(X[:, j], np.asarray(ref["edges"])), EPSILON, None)
        result[name] = round(float(np.sum((actual - expected) * np.log(actual / expected))), 4)
    return result
