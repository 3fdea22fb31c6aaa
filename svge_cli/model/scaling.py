"""The one standardisation every part of svge uses (latents for GPs, labels for regressors and surrogates),
and the label transforms built on it: plain standardisation and the rank-gauss map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from svge_cli.model.metrics import average_ranks


@dataclass(frozen=True)
class Scaler:
    """An affine map to zero mean / unit spread, kept fixed once chosen (e.g. the training statistics).

    A constant column (zero spread) keeps a spread of 1, so it maps to zeros instead of NaN.
    """

    mean: np.ndarray | float
    std: np.ndarray | float

    @classmethod
    def fit(cls, values: np.ndarray, axis: int | None = None) -> Scaler:
        values = np.asarray(values, dtype=np.float64)
        std = np.std(values, axis=axis)
        mean = np.mean(values, axis=axis)
        if axis is None:
            return cls(float(mean), float(std) if std > 0 else 1.0)
        return cls(mean, np.where(std > 0, std, 1.0))

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.std + self.mean


@dataclass(frozen=True)
class LabelScale(Scaler):
    """Standardisation of a label column: the regressor learns (y - mean) / std."""

    mean: float
    std: float

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return self.forward(values)

    def restore(self, scores: np.ndarray) -> np.ndarray:
        return self.inverse(scores)

    def restore_spread(self, scores: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """A standard deviation on the normalised scale, in the label's units."""
        return np.asarray(spread, dtype=np.float64) * self.std

    def meta(self) -> dict[str, Any]:
        return {"label_mean": self.mean, "label_std": self.std}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


def rank_gauss(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank mapped to the standard normal quantile (ties share one): a Gaussian copula."""
    v = np.asarray(values, dtype=np.float64)
    p = (average_ranks(v) - 0.5) / len(v)
    return torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy()


TAIL_SLOPE = 0.1  # beyond the fitted labels, a score moves the label a tenth as fast as it does on average


def _extrapolating_interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray, tail: float) -> np.ndarray:
    """Piecewise-linear through the knots (xp increasing), continued past either end with `tail` times
    the average slope: strictly monotone everywhere, but gentle outside the fitted range."""
    x = np.asarray(x, dtype=np.float64)
    out = np.interp(x, xp, fp)
    if len(xp) < 2:
        return out
    slope = tail * (fp[-1] - fp[0]) / (xp[-1] - xp[0])
    out = np.where(x < xp[0], fp[0] + (x - xp[0]) * slope, out)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * slope, out)


@dataclass(frozen=True)
class RankGaussScale(LabelScale):
    """Labels mapped through their empirical distribution onto a standard normal (a monotone map).

    Accuracy columns have long tails of failed cells (NB201: about 10% accuracy)
    that dominate an MSE on standardised labels; after this map the regressor
    spends its capacity on the order of the cells, which is what a search uses.
    The map is piecewise linear between the fitted labels' knots (distinct values,
    at the normal quantiles of their mid-ranks), continued beyond them with a tenth
    of the average slope, so scores outside the fitted range stay ordered without
    flying far past the labels seen, and `restore` inverts `normalize`.
    `mean` / `std` keep the plain statistics (older readers of the metadata).
    """

    knots_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    knots_z: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, values: np.ndarray) -> "RankGaussScale":
        v = np.asarray(values, dtype=np.float64)
        plain = LabelScale.fit(v)
        knots_y, first = np.unique(v, return_index=True)
        z = rank_gauss(v)[first]
        if len(knots_y) < 2:  # a constant column: fall back to the plain scale's line
            knots_y, z = np.array([plain.mean - plain.std, plain.mean + plain.std]), np.array([-1.0, 1.0])
        return cls(plain.mean, plain.std, knots_y, z)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return _extrapolating_interp(values, self.knots_y, self.knots_z, 1 / TAIL_SLOPE)

    def restore(self, scores: np.ndarray) -> np.ndarray:
        return _extrapolating_interp(scores, self.knots_z, self.knots_y, TAIL_SLOPE)

    def restore_spread(self, scores: np.ndarray, spread: np.ndarray) -> np.ndarray:
        s, d = np.asarray(scores, dtype=np.float64), np.asarray(spread, dtype=np.float64)
        return (self.restore(s + d) - self.restore(s - d)) / 2

    def meta(self) -> dict[str, Any]:
        return super().meta() | {"label_transform": "rank-gauss"}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"label_knots_y": self.knots_y, "label_knots_z": self.knots_z}


LABEL_TRANSFORMS = ("rank-gauss", "standard")


def fit_scale(values: np.ndarray, transform: str) -> LabelScale:
    if transform == "rank-gauss":
        return RankGaussScale.fit(values)
    if transform == "standard":
        return LabelScale.fit(values)
    raise ValueError(f"label transform must be one of {', '.join(LABEL_TRANSFORMS)}, not {transform!r}")
