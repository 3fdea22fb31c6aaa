"""Surrogate models for pool search: an exact Matern GP and DNGO, behind one small interface.

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
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from svge_cli.model.scaling import rank_gauss

DTYPE = torch.float64
CHUNK = 4096  # candidates per prediction block
JITTER = 1e-8


class Surrogate(Protocol):
    noise: float

    def fit(self, x: np.ndarray, y: np.ndarray) -> None: ...

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE)


# ---------------------------------------------------------------- exact GP


def matern52(a: torch.Tensor, b: torch.Tensor, lengthscale: torch.Tensor, outputscale: torch.Tensor) -> torch.Tensor:
    """Matern 5/2 kernel matrix between rows of `a` and `b` (lengthscale: scalar or one per dim)."""
    a, b = a / lengthscale, b / lengthscale
    d2 = (a.square().sum(-1, keepdim=True) - 2 * a @ b.T + b.square().sum(-1)).clamp_min(1e-30)
    r = torch.sqrt(5.0 * d2)
    return outputscale * (1 + r + r.square() / 3) * torch.exp(-r)


@torch.no_grad()
def matern52_inplace(a: torch.Tensor, b: torch.Tensor, lengthscale: torch.Tensor, outputscale: float) -> torch.Tensor:
    """`matern52` without autograd, computed in place: the big N x M prediction blocks are
    memory-bound, so fewer temporaries is most of the speed."""
    a, b = a / lengthscale, b / lengthscale
    k = torch.addmm(b.square().sum(-1).unsqueeze(0), a, b.T, alpha=-2.0)
    k.add_(a.square().sum(-1, keepdim=True)).clamp_(min=1e-30).mul_(5.0).sqrt_()  # r = sqrt(5) d
    e = torch.neg(k).exp_()
    k.mul_(k.div(3.0).add_(1.0)).add_(1.0).mul_(e).mul_(outputscale)  # (1 + r + r^2/3) exp(-r)
    return k


@dataclass
class GPParams:
    log_lengthscale: np.ndarray
    log_outputscale: float
    log_noise: float
    mean: float


class ExactGP:
    """Exact GP regression, Matern 5/2 kernel, constant mean, Gaussian noise; type-II ML fit.

    `ard` gives one lengthscale per input dimension under the dimension-scaled log-normal
    prior of Hvarfner et al. 2024 (the prior that makes ARD GPs work in tens of dimensions
    with few points: median lengthscale ~ sqrt(D)); the isotropic kernel has one
    lengthscale fitted by plain maximum likelihood.  The fit is L-BFGS on the exact log
    marginal likelihood, warm-started from the previous fit when `warm` (the data only grow
    between rounds, so the optimum moves little and a few iterations suffice).
    """

    def __init__(self, ard: bool = False, iters: int = 30, warm: bool = True, noise_floor: float = 1e-4) -> None:
        self.ard, self.iters, self.warm, self.noise_floor = ard, iters, warm, noise_floor
        self.params: GPParams | None = None
        self._x = self._chol = self._alpha = None

    # -------------------------------------------------------- hyper-parameters

    def _start(self, dim: int) -> GPParams:
        if self.warm and self.params is not None and len(self.params.log_lengthscale) == (dim if self.ard else 1):
            return self.params
        ls = 0.5 * math.log(dim)  # log sqrt(D): the typical distance between z-scored points
        return GPParams(np.full(dim if self.ard else 1, ls), 0.0, math.log(0.05), 0.0)

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        xt, yt = _t(x), _t(y)
        start = self._start(x.shape[1])
        log_ls = torch.tensor(start.log_lengthscale, dtype=DTYPE, requires_grad=True)
        log_os = torch.tensor(start.log_outputscale, dtype=DTYPE, requires_grad=True)
        log_noise = torch.tensor(max(start.log_noise, math.log(self.noise_floor)), dtype=DTYPE, requires_grad=True)
        mean = torch.tensor(start.mean, dtype=DTYPE, requires_grad=True)
        params = [log_ls, log_os, log_noise, mean]
        dim = x.shape[1]
        prior_mu, prior_sigma = math.sqrt(2) + 0.5 * math.log(dim), math.sqrt(3)
        n = len(y)

        def loss() -> torch.Tensor:
            noise = self.noise_floor + torch.exp(log_noise)
            k = matern52(xt, xt, torch.exp(log_ls), torch.exp(log_os))
            k = k + (noise + JITTER) * torch.eye(n, dtype=DTYPE)
            chol, info = torch.linalg.cholesky_ex(k)
            if int(info) != 0:
                return torch.tensor(1e10, dtype=DTYPE, requires_grad=True)
            r = (yt - mean).unsqueeze(-1)
            a = torch.cholesky_solve(r, chol)
            nll = 0.5 * (r * a).sum() + torch.log(torch.diagonal(chol)).sum()
            if self.ard:
                nll = nll + (0.5 * ((log_ls - prior_mu) / prior_sigma).square()).sum()
            # weak priors that keep the outputscale and noise sensible on standardised targets
            nll = nll + 0.5 * (log_os / 2.0).square() + 0.5 * ((log_noise - math.log(0.05)) / 3.0).square()
            return nll / n

        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.iters,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            value = loss()
            if value.requires_grad:
                value.backward()
            return value

        try:
            opt.step(closure)
        except RuntimeError:  # a failed line search keeps the last good parameters
            pass
        with torch.no_grad():
            for p in params:
                if not torch.isfinite(p).all():
                    p.copy_(torch.zeros_like(p))
        self.params = GPParams(
            log_ls.detach().numpy().copy(), float(log_os.detach()), float(log_noise.detach()), float(mean.detach())
        )
        self._condition(xt, yt)

    # -------------------------------------------------------- posterior

    @property
    def lengthscale(self) -> torch.Tensor:
        return torch.exp(_t(self.params.log_lengthscale))

    @property
    def outputscale(self) -> float:
        return math.exp(self.params.log_outputscale)

    @property
    def noise(self) -> float:
        return self.noise_floor + math.exp(self.params.log_noise)

    def _condition(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            k = matern52(x, x, self.lengthscale, torch.tensor(self.outputscale, dtype=DTYPE))
            k = k + (self.noise + JITTER) * torch.eye(len(x), dtype=DTYPE)
            chol, info = torch.linalg.cholesky_ex(k)
            jitter = 1e-6
            while int(info) != 0:
                chol, info = torch.linalg.cholesky_ex(k + jitter * torch.eye(len(x), dtype=DTYPE))
                jitter *= 10
            self._x, self._chol = x, chol
            self._alpha = torch.cholesky_solve((y - self.params.mean).unsqueeze(-1), chol)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, variances = [], []
        ls = self.lengthscale
        for s in range(0, len(x), CHUNK):
            xc = _t(x[s : s + CHUNK])
            ks = matern52_inplace(self._x, xc, ls, self.outputscale)
            means.append((self.params.mean + ks.T @ self._alpha).squeeze(-1))
            a = torch.linalg.solve_triangular(self._chol, ks, upper=False)
            variances.append((self.outputscale - a.square().sum(0)).clamp_min(1e-12))
        if not means:
            return np.zeros(0), np.zeros(0)
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xc = _t(x)
        os_ = torch.tensor(self.outputscale, dtype=DTYPE)
        ks = matern52(self._x, xc, self.lengthscale, os_)
        a = torch.linalg.solve_triangular(self._chol, ks, upper=False)
        mean = (self.params.mean + ks.T @ self._alpha).squeeze(-1)
        cov = matern52(xc, xc, self.lengthscale, os_) - a.T @ a
        return mean.numpy(), cov.numpy()


# ---------------------------------------------------------------- DNGO


class DNGO:
    """An MLP trained on the queried cells, then Bayesian linear regression on its last hidden layer.

    Snoek et al. 2015, as arch2vec uses it (pybnn's DNGO: three tanh layers of 50 units).
    The BLR's prior precision `alpha` and noise precision `beta` are chosen by maximising its
    closed-form evidence over a small grid (pybnn samples them with MCMC; the grid is
    deterministic and costs nothing).  Training restarts from a seeded initialisation every
    fit so a search stays reproducible.
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
        xt, yt = _t(x), _t(y)
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
            phi = self._design(_t(x[s : s + CHUNK]))
            means.append(phi @ self._w)
            a = torch.linalg.solve_triangular(self._chol, phi.T, upper=False)
            variances.append(a.square().sum(0).clamp_min(1e-12))
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = self._design(_t(x))
        a = torch.linalg.solve_triangular(self._chol, phi.T, upper=False)
        return (phi @ self._w).numpy(), (a.T @ a).numpy()


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
