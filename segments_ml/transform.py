"""Numeric transforms and nearest-centre assignment with numpy only, shared by training and
the workers' scoring (which must not need scikit-learn for clusters)."""

from dataclasses import dataclass

import numpy as np

from .dataset import finite, log_transform


@dataclass
class Transform:
    """log1p of heavy-tailed columns (when ``log``), then standardisation; plain numbers so
    scoring needs numpy only."""

    features: list[str]
    log: bool
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, features: list[str], log: bool) -> "Transform":
        L = log_transform(X, features) if log else np.asarray(X, dtype=np.float64)
        mean = L.mean(axis=0)
        scale = L.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(features, log, mean, scale)

    def logged(self, X: np.ndarray) -> np.ndarray:
        X = finite(np.asarray(X, dtype=np.float64))
        return log_transform(X, self.features) if self.log else X

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (self.logged(X) - self.mean) / self.scale

    def as_dict(self) -> dict:
        return {
            "features": self.features,
            "log": self.log,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        return cls(
            list(data["features"]),
            bool(data["log"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
        )


def nearest(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each row (numpy only, a few microseconds a row)."""
    out = np.empty(len(Z), dtype=np.intp)
    for start in range(0, len(Z), 100_000):  # bounded memory for millions of rows
        part = Z[start : start + 100_000]
        out[start : start + len(part)] = (
            ((part[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        )
    return out
