"""Surrogate models for pool search: svge's exact Matern GP (`svge_cli.model.exact_gp`) and DNGO, behind one
small interface.

Why these two.  Pool search fits a model on tens to a few hundred queried cells and ranks
thousands of candidates per round, so the model must be cheap at small N and give a usable
variance.  An exact GP is the textbook choice at N <= 1000 (the O(N^3) Cholesky of a 500 x 500
matrix takes milliseconds); DNGO (Snoek et al. 2015: an MLP whose last hidden layer feeds a
Bayesian linear regression) is arch2vec's choice on the same kind of pretrained embeddings.
The paper's sparse GP (`svge_cli.search.gp`) exists for tens of thousands of training points; at
pool-search sizes it would only approximate this exact GP.

Interface (all in the model's own standardised target units):

* ``fit(x, y)``          -- learn from the queried cells' features and targets;
* ``predict(x)``         -- marginal mean and variance of the latent function at many
                            candidates (chunked, so a 423,624-cell pool fits in memory);
* ``joint(x)``           -- mean and full covariance at a short list of candidates, which the
                            batch rules condition on fantasised observations (kriging believer)
                            by exact rank-one updates;
* ``noise``              -- the observation noise variance those updates use.

Everything runs in float64 on the CPU, one thread as the caller sets it.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from svge_cli.model.exact_gp import CHUNK, DTYPE, ExactGP, tensor64
from svge_cli.model.scaling import rank_gauss


class Surrogate(Protocol):
    noise: float

    def fit(self, x: np.ndarray, y: np.ndarray) -> None: ...

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


# ---------------------------------------------------------------- DNGO


class DNGO:
    """An MLP trained on the queried cells, then Bayesian linear regression on its last hidden layer.

    Snoek et al. 2015, as arch2vec uses it (pybnn's DNGO: three tanh layers of 50 units).
    The BLR's prior precision `alpha` and noise precision `beta` are chosen by maximising its
    closed-form evidence over a small grid (pybnn samples them with MCMC; the grid is
    deterministic and costs nothing).  Training restarts from a seeded initialisation every
    fit so a search stays reproducible.

    Args:
        hidden: units in each of the three tanh layers; the BLR works on the last one.
        epochs: full-batch Adam steps of each fit.
        lr: Adam's learning rate.
        seed: seeds the initialisation, offset by the number of scored cells at each fit.
    """

    def __init__(self, hidden: int = 50, epochs: int = 500, lr: float = 1e-2, seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr, self.seed = hidden, epochs, lr, seed
        self.noise = 1.0

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        gen = torch.Generator().manual_seed(self.seed + len(y))
        d, h = x.shape[1], self.hidden
        layers = []
        for i in range(3):
            lin = torch.nn.Linear(d if i == 0 else h, h).to(DTYPE)
            torch.nn.init.xavier_uniform_(lin.weight, generator=gen)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers)
        head = torch.nn.Linear(h, 1).to(DTYPE)
        xt, yt = tensor64(x), tensor64(y)
        opt = torch.optim.Adam(list(self.body.parameters()) + list(head.parameters()), lr=self.lr)
        for _ in range(self.epochs):  # full batch: at most a few hundred points
            opt.zero_grad()
            loss = (head(self.body(xt)).squeeze(-1) - yt).square().mean()
            loss.backward()
            opt.step()
        with torch.no_grad():
            phi = self._design(xt)
            self._blr(phi, yt)

    def _design(self, x: torch.Tensor) -> torch.Tensor:
        phi = self.body(x)
        return torch.cat([phi, torch.ones(len(x), 1, dtype=DTYPE)], 1)

    def _blr(self, phi: torch.Tensor, y: torch.Tensor) -> None:
        n, m = phi.shape
        gram, phiy = phi.T @ phi, phi.T @ y
        best = None
        for alpha in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
            for beta in (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0):
                a = alpha * torch.eye(m, dtype=DTYPE) + beta * gram
                chol = torch.linalg.cholesky(a)
                mean = beta * torch.cholesky_solve(phiy.unsqueeze(-1), chol).squeeze(-1)
                resid = (y - phi @ mean).square().sum()
                evidence = (
                    0.5 * m * math.log(alpha)
                    + 0.5 * n * math.log(beta)
                    - 0.5 * beta * resid
                    - 0.5 * alpha * mean.square().sum()
                    - torch.log(torch.diagonal(chol)).sum()
                )
                if best is None or evidence > best[0]:
                    best = (float(evidence), alpha, beta, chol, mean)
        _, alpha, beta, chol, mean = best
        self._chol, self._w, self.noise = chol, mean, 1.0 / beta

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, variances = [], []
        for s in range(0, len(x), CHUNK):
            phi = self._design(tensor64(x[s : s + CHUNK]))
            means.append(phi @ self._w)
            a = torch.linalg.solve_triangular(self._chol, phi.T, upper=False)
            variances.append(a.square().sum(0).clamp_min(1e-12))
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = self._design(tensor64(x))
        a = torch.linalg.solve_triangular(self._chol, phi.T, upper=False)
        return (phi @ self._w).numpy(), (a.T @ a).numpy()


# ---------------------------------------------------------------- a predictor's mean as the GP's prior


class PriorMeanGP:
    """A GP on the leading feature columns whose prior mean is a ridge regression on the trailing ones.

    The other way to let pool search read zero-cost proxies (issue 22): instead of widening the
    kernel's input, a linear predictor on the proxies, refitted on the scored cells each round,
    gives the level, and the GP on the latent means models what the proxies miss (its residuals).
    Far from the data the GP falls back to the proxies' prediction rather than a constant.

    Args:
        prior_columns: how many trailing input columns (the proxies) feed the ridge regression; the
            rest go to the GP.
        base: the surrogate fitted to the ridge regression's residuals on the leading columns.
        ridge: the L2 penalty on the regression's slopes (the intercept is not shrunk).
    """

    def __init__(self, prior_columns: int, base: Surrogate, ridge: float = 1.0) -> None:
        if prior_columns < 1:
            raise ValueError("the prior mean needs at least one column")
        self.prior_columns, self.base, self.ridge = prior_columns, base, ridge
        self.weights = np.zeros(prior_columns + 1)

    @property
    def noise(self) -> float:
        return float(self.base.noise)

    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        design = np.concatenate([np.ones((len(x), 1)), x[:, -self.prior_columns :]], axis=1)
        return x[:, : -self.prior_columns], design

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        kernel_x, design = self._split(x)
        penalty = self.ridge * np.eye(design.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(design.T @ design + penalty, design.T @ np.asarray(y, dtype=np.float64))
        self.base.fit(kernel_x, y - design @ self.weights)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kernel_x, design = self._split(x)
        mean, var = self.base.predict(kernel_x)
        return mean + design @ self.weights, var

    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kernel_x, design = self._split(x)
        mean, cov = self.base.joint(kernel_x)
        return mean + design @ self.weights, cov


# ---------------------------------------------------------------- target transforms


def transform_targets(y: np.ndarray, how: str) -> np.ndarray:
    """Targets as the surrogate sees them, standardised; maximising them maximises `y`.

    ``none``: z-score.  ``rank``: a Gaussian copula (ranks mapped through the normal
    quantile), robust to NB201's long tail of broken cells that otherwise dominates the
    fit.  ``log``: -log(best - y + spread/100), which stretches the top, where the search is.
    """
    y = np.asarray(y, dtype=np.float64)
    if how == "rank":
        out = rank_gauss(y)
    elif how == "log":
        spread = max(float(y.max() - y.min()), 1e-9)
        out = -np.log(y.max() - y + spread / 100)
    elif how == "none":
        out = y
    else:
        raise ValueError(f"unknown target transform {how!r} (none, rank, log)")
    std = out.std()
    return (out - out.mean()) / (std if std > 0 else 1.0)


SURROGATES = {
    "gp": lambda seed: ExactGP(ard=False),
    "gp-ard": lambda seed: ExactGP(ard=True),
    "dngo": lambda seed: DNGO(seed=seed),
}


def make_surrogate(name: str, seed: int = 0) -> Surrogate:
    try:
        return SURROGATES[name](seed)
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r} (known: {', '.join(SURROGATES)})") from None
