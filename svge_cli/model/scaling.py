"""The one standardisation every part of svge uses: latents for GPs, labels for regressors and surrogates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
