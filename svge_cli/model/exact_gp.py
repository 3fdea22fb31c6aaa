"""svge's one exact GP: Matern 5/2 kernel, constant mean, Gaussian noise, type-II maximum likelihood.

Pool search fits it on the queried cells (`svge_cli.search.surrogates`) and the fine-tuned predictor's GP
head (`svge_cli.model.gphead`) fits it on the labelled cells, so both rest on the same kernel and the same
hyper-parameter fit.  Exact, not sparse: at the few thousand points either sees, the O(N^3) Cholesky of a
1,000 x 1,000 matrix takes milliseconds.  Everything runs in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

DTYPE = torch.float64
CHUNK = 4096  # candidates per prediction block
JITTER = 1e-8


def tensor64(a: np.ndarray) -> torch.Tensor:
    """A contiguous float64 tensor of an array: the dtype every GP computation here uses."""
    return torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE)


def matern52(a: torch.Tensor, b: torch.Tensor, lengthscale: torch.Tensor, outputscale: torch.Tensor) -> torch.Tensor:
    """Matern 5/2 kernel matrix between rows of `a` and `b` (lengthscale: scalar or one per dim).

    Args:
        a: first set of points, (N, D).
        b: second set of points, (M, D).
        lengthscale: positive, a scalar or (D,), dividing the inputs before distances are taken.
        outputscale: the kernel's variance at distance 0 (positive scalar tensor).

    Returns:
        The (N, M) kernel matrix, differentiable in every argument.
    """
    a, b = a / lengthscale, b / lengthscale
    d2 = (a.square().sum(-1, keepdim=True) - 2 * a @ b.T + b.square().sum(-1)).clamp_min(1e-30)
    r = torch.sqrt(5.0 * d2)
    return outputscale * (1 + r + r.square() / 3) * torch.exp(-r)


@torch.no_grad()
def matern52_inplace(a: torch.Tensor, b: torch.Tensor, lengthscale: torch.Tensor, outputscale: float) -> torch.Tensor:
    """`matern52` without autograd, computed in place: the big N x M prediction blocks are
    memory-bound, so fewer temporaries is most of the speed.

    Args:
        a: first set of points, (N, D).
        b: second set of points, (M, D).
        lengthscale: positive, a scalar or (D,), dividing the inputs before distances are taken.
        outputscale: the kernel's variance at distance 0, a plain float.

    Returns:
        The (N, M) kernel matrix, equal to `matern52`'s, with no gradient.
    """
    a, b = a / lengthscale, b / lengthscale
    k = torch.addmm(b.square().sum(-1).unsqueeze(0), a, b.T, alpha=-2.0)
    k.add_(a.square().sum(-1, keepdim=True)).clamp_(min=1e-30).mul_(5.0).sqrt_()  # r = sqrt(5) d
    e = torch.neg(k).exp_()
    k.mul_(k.div(3.0).add_(1.0)).add_(1.0).mul_(e).mul_(outputscale)  # (1 + r + r^2/3) exp(-r)
    return k


def marginal_nll(k: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Negative log marginal likelihood (constant left out) of `residual` under N(0, k); 1e10 if k is singular.

    Args:
        k: the (N, N) kernel matrix with the noise already on its diagonal.
        residual: the (N,) targets minus the GP's mean.

    Returns:
        A scalar, differentiable in both arguments where the Cholesky succeeds.
    """
    chol, info = torch.linalg.cholesky_ex(k)
    if int(info) != 0:
        return torch.tensor(1e10, dtype=k.dtype, requires_grad=True)
    r = residual.unsqueeze(-1)
    return 0.5 * (r * torch.cholesky_solve(r, chol)).sum() + torch.log(torch.diagonal(chol)).sum()


def lengthscale_prior(log_ls: torch.Tensor, dim: int) -> torch.Tensor:
    """Negative log density (constant left out) of the dimension-scaled log-normal prior (Hvarfner et al. 2024).

    Args:
        log_ls: the log length-scales, one per input dimension.
        dim: the input width the prior scales with (median length-scale ~ sqrt(dim)).

    Returns:
        A scalar.
    """
    mu, sigma = math.sqrt(2) + 0.5 * math.log(dim), math.sqrt(3)
    return (0.5 * ((log_ls - mu) / sigma).square()).sum()


def scale_priors(log_os: torch.Tensor, log_noise: torch.Tensor) -> torch.Tensor:
    """Weak priors that keep output scales and noise sensible on standardised targets.

    Args:
        log_os: the log output scale, or a tensor of them (one per summed kernel).
        log_noise: the log noise variance above the noise floor.

    Returns:
        A scalar, their negative log density with constants left out.
    """
    return (0.5 * (log_os / 2.0).square()).sum() + 0.5 * ((log_noise - math.log(0.05)) / 3.0).square()


def minimise(params: list[torch.Tensor], loss: Callable[[], torch.Tensor], iters: int) -> None:
    """L-BFGS (strong Wolfe line search) on `loss` over `params`, in place; a failed line search keeps the last step.

    Args:
        params: leaf tensors with requires_grad, updated in place.
        loss: recomputes the objective from `params`; a value without grad (a sentinel) is not differentiated.
        iters: the most L-BFGS iterations.
    """
    opt = torch.optim.LBFGS(
        params, lr=1.0, max_iter=iters, line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9
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

    Args:
        ard: one lengthscale per input dimension (with the dimension-scaled prior) instead of one.
        iters: L-BFGS iterations per fit.
        warm: start each fit from the previous fit's hyperparameters.
        noise_floor: the smallest Gaussian noise variance the fit may reach, for a stable Cholesky.
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
        xt, yt = tensor64(x), tensor64(y)
        start = self._start(x.shape[1])
        log_ls = torch.tensor(start.log_lengthscale, dtype=DTYPE, requires_grad=True)
        log_os = torch.tensor(start.log_outputscale, dtype=DTYPE, requires_grad=True)
        log_noise = torch.tensor(max(start.log_noise, math.log(self.noise_floor)), dtype=DTYPE, requires_grad=True)
        mean = torch.tensor(start.mean, dtype=DTYPE, requires_grad=True)
        params = [log_ls, log_os, log_noise, mean]
        dim, eye = x.shape[1], torch.eye(len(y), dtype=DTYPE)

        def loss() -> torch.Tensor:
            k = matern52(xt, xt, torch.exp(log_ls), torch.exp(log_os))
            nll = marginal_nll(k + (self.noise_floor + torch.exp(log_noise) + JITTER) * eye, yt - mean)
            if self.ard:
                nll = nll + lengthscale_prior(log_ls, dim)
            return (nll + scale_priors(log_os, log_noise)) / len(y)

        minimise(params, loss, self.iters)
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
        return torch.exp(tensor64(self.params.log_lengthscale))

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
            xc = tensor64(x[s : s + CHUNK])
            ks = matern52_inplace(self._x, xc, ls, self.outputscale)
            means.append((self.params.mean + ks.T @ self._alpha).squeeze(-1))
            a = torch.linalg.solve_triangular(self._chol, ks, upper=False)
            variances.append((self.outputscale - a.square().sum(0)).clamp_min(1e-12))
        if not means:
            return np.zeros(0), np.zeros(0)
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def joint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xc = tensor64(x)
        os_ = torch.tensor(self.outputscale, dtype=DTYPE)
        ks = matern52(self._x, xc, self.lengthscale, os_)
        a = torch.linalg.solve_triangular(self._chol, ks, upper=False)
        mean = (self.params.mean + ks.T @ self._alpha).squeeze(-1)
        cov = matern52(xc, xc, self.lengthscale, os_) - a.T @ a
        return mean.numpy(), cov.numpy()
