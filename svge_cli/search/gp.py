"""Sparse GP regression on latent points, and batch selection by expected improvement (paper IV-D).

The GP is Titsias' SGPR: a collapsed variational bound with M inducing points
(initialised on training latents, then learned with the kernel), so a fit costs
O(N M^2) instead of O(N^3).  The bound and the predictive equations are written
out here on top of gpytorch's kernel and likelihood: gpytorch's own
InducingPointKernel runs through a dense N x N Cholesky once BoTorch is
imported (BoTorch switches gpytorch's fast computations off), which is hopeless
at D-VAE's 17,118 training points.  Hyper-parameters are learned on a seeded
subset of at most FIT_POINTS points; the posterior then conditions on all of
them.

`LatentGP` wraps the fitted model as a BoTorch `Model`, so batches come from
BoTorch's q-EI (in its numerically robust log form, qLogEI) optimised by
sequential greedy selection inside the training latents' bounding box.

Inputs are z-scored with the training latents' statistics and targets are
standardised with the initial labels' mean/std (D-VAE's protocol; D-VAE also
negates the scores because its SGP minimises -- a sign flip that changes no
RMSE, log-likelihood or correlation, so here the GP maximises plain scores).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch
from botorch.acquisition import qLogExpectedImprovement
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.sampling import manual_seed
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from svge_cli.model.scaling import Scaler

DTYPE = torch.float64
DEFAULT_INDUCING = 500
FIT_POINTS = 3000  # hyper-parameters are learned on at most this many points
FIT_ITERS = 150
FIT_LR = 0.03
JITTER = 1e-6
#: BoTorch optimisation effort per selected point (sequential greedy): cheap enough for a CPU
RESTARTS = 4
RAW_SAMPLES = 128
LBFGS_ITERS = 50
MC_SAMPLES = 128  # quasi-MC samples of q-EI (BoTorch's default), seeded per round


class SparseGP(torch.nn.Module):
    """SGPR with an ARD RBF kernel: the collapsed bound for fitting, closed-form predictions."""

    def __init__(self, inducing: Tensor) -> None:
        super().__init__()
        dim = inducing.shape[-1]
        self.inducing = torch.nn.Parameter(inducing.clone())
        self.kernel = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=dim))
        self.kernel.base_kernel.lengthscale = math.sqrt(dim)  # dimension-scaled start (inputs are z-scored)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood()
        self.likelihood.noise = 0.1
        self.mean = torch.nn.Parameter(torch.zeros((), dtype=inducing.dtype))
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None
        self.to(device=inducing.device, dtype=inducing.dtype)

    @property
    def noise(self) -> Tensor:
        return self.likelihood.noise.squeeze()

    def _k(self, a: Tensor, b: Tensor) -> Tensor:
        return self.kernel(a, b).to_dense()

    def _factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Cholesky of Kuu, A = L^-1 Kuf / sigma, Cholesky of B = I + A A^T, and c = LB^-1 A r / sigma."""
        z = self.inducing
        eye = torch.eye(len(z), dtype=z.dtype, device=z.device)
        chol = psd_safe_cholesky(self._k(z, z) + JITTER * self.kernel.outputscale * eye)
        sigma = self.noise.sqrt()
        a = torch.linalg.solve_triangular(chol, self._k(z, x), upper=False) / sigma
        chol_b = psd_safe_cholesky(eye + a @ a.T)
        c = torch.linalg.solve_triangular(chol_b, (a @ (y - self.mean)).unsqueeze(-1), upper=False) / sigma
        return chol, a, chol_b, c

    def bound(self, x: Tensor, y: Tensor) -> Tensor:
        """Titsias' lower bound on the log marginal likelihood, per data point."""
        n = x.shape[0]
        _, a, chol_b, c = self._factors(x, y)
        var = self.noise
        resid = y - self.mean
        trace_kff = n * self.kernel.outputscale  # the RBF kernel's diagonal is its output scale
        total = (
            -0.5 * n * math.log(2 * math.pi)
            - torch.log(torch.diagonal(chol_b)).sum()
            - 0.5 * n * torch.log(var)
            - 0.5 * resid.square().sum() / var
            + 0.5 * c.square().sum()
            - 0.5 * (trace_kff / var - a.square().sum())
        )
        return total / n

    @torch.no_grad()
    def condition(self, x: Tensor, y: Tensor) -> None:
        """Cache the posterior given all training points (fitting may have used a subset)."""
        chol, _, chol_b, c = self._factors(x, y)
        self._cache = (chol, chol_b, c)

    def predict(self, x: Tensor, observation_noise: bool = False) -> tuple[Tensor, Tensor]:
        """Posterior mean (..., q) and covariance (..., q, q) at points x (..., q, d).

        The solves against the inducing factors run once on all points of all
        batches together (one matrix right-hand side), not batch by batch.
        """
        if self._cache is None:
            raise RuntimeError("condition() the GP on its training data before predicting")
        chol, chol_b, c = self._cache
        shape = x.shape[:-1]
        t1 = torch.linalg.solve_triangular(chol, self._k(self.inducing, x.reshape(-1, x.shape[-1])), upper=False)
        t2 = torch.linalg.solve_triangular(chol_b, t1, upper=False)
        mean = (self.mean + (t2.T @ c).squeeze(-1)).reshape(shape)
        a1, a2 = t1.T.reshape(*shape, -1), t2.T.reshape(*shape, -1)
        cov = self._k(x, x) - a1 @ a1.transpose(-1, -2) + a2 @ a2.transpose(-1, -2)
        if observation_noise:
            cov = cov + self.noise * torch.eye(x.shape[-2], dtype=x.dtype, device=x.device)
        return mean, cov


class LatentGP(Model):
    """A fitted `SparseGP` seen through BoTorch's Model interface (single output)."""

    def __init__(self, gp: SparseGP) -> None:
        super().__init__()
        self.gp = gp

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool = False,
        posterior_transform=None,
        **kwargs,
    ) -> GPyTorchPosterior:
        """BoTorch's view of the GP at `X`: the joint normal over the q points of each batch.

        Args:
            X: GP inputs (z-scored latents) of shape (..., q, d).
            output_indices: ignored; the model has a single output.
            observation_noise: when true, the likelihood's noise is added to the covariance.
            posterior_transform: applied to the posterior before it is returned; None returns it as is.
            **kwargs: taken for BoTorch's interface and ignored.

        Returns:
            The posterior in standardised target units, mean (..., q) and covariance (..., q, q) with
            a small jitter on the diagonal, transformed when `posterior_transform` is given.
        """
        mean, cov = self.gp.predict(X, observation_noise=bool(observation_noise))
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        mvn = gpytorch.distributions.MultivariateNormal(mean, cov + JITTER * eye)
        posterior = GPyTorchPosterior(mvn)
        return posterior_transform(posterior) if posterior_transform is not None else posterior


@dataclass
class FittedGP:
    """A GP fitted on latent points, with the maps between latents/scores and its own units."""

    gp: SparseGP
    inputs: Scaler  # latent -> z-scored GP input
    targets: Scaler  # score -> standardised GP target
    best: float  # best standardised target seen

    @property
    def device(self) -> torch.device:
        return self.gp.inducing.device

    def _x(self, latents: np.ndarray) -> Tensor:
        return torch.as_tensor(self.inputs.forward(latents), dtype=DTYPE, device=self.device)

    @torch.no_grad()
    def predict(self, latents: np.ndarray, observation_noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance of the standardised target at each latent point."""
        means, variances = [], []
        for s in range(0, len(latents), 2048):
            mean, cov = self.gp.predict(self._x(latents[s : s + 2048]).unsqueeze(0), observation_noise)
            means.append(mean[0].cpu().numpy())
            variances.append(torch.diagonal(cov[0]).clamp_min(1e-12).cpu().numpy())
        return np.concatenate(means), np.concatenate(variances)


def fit_sparse_gp(
    latents: np.ndarray,
    scores: np.ndarray,
    inputs: Scaler,
    targets: Scaler,
    inducing: int = DEFAULT_INDUCING,
    seed: int = 0,
    iters: int = FIT_ITERS,
    fit_points: int = FIT_POINTS,
    device: torch.device | str = "cpu",
) -> FittedGP:
    """Fit an SGPR to (latent, score) pairs; inducing points start on a seeded subset of the latents.

    Hyper-parameters are learned on at most `fit_points` of the points (all of them is
    affordable on a GPU); the posterior always conditions on every point.

    Args:
        latents: the labelled points, shape (N, D), N at least 2, in latent units.
        scores: the score at each point, shape (N,), in the objective's units.
        inputs: the z-scoring that maps latents to GP inputs (the training latents' statistics).
        targets: the standardisation that maps scores to GP targets (the initial labels' mean/std).
        inducing: the most inducing points; fewer when there are fewer distinct latents.
        seed: seeds which latents start as inducing points and which are fitted on.
        iters: Adam steps taken on the bound.
        fit_points: the most points the hyper-parameters are learned on.
        device: where the GP is fitted and kept.

    Returns:
        The GP conditioned on all N points, with both scalers and its best standardised target.
    """
    if len(latents) < 2:
        raise ValueError("a GP needs at least two labelled points")
    x = torch.as_tensor(inputs.forward(latents), dtype=DTYPE, device=device)
    y = torch.as_tensor(targets.forward(scores), dtype=DTYPE, device=device)
    rng = np.random.default_rng(seed)
    distinct = np.unique(latents, axis=0, return_index=True)[1]  # repeated points would make Kuu singular
    m = min(inducing, len(distinct))
    gp = SparseGP(x[torch.as_tensor(np.sort(rng.choice(distinct, size=m, replace=False)))])
    fit_rows = torch.as_tensor(np.sort(rng.choice(len(x), size=min(fit_points, len(x)), replace=False)))
    xf, yf = x[fit_rows], y[fit_rows]
    optimizer = torch.optim.Adam(gp.parameters(), lr=FIT_LR)
    for _ in range(iters):
        optimizer.zero_grad()
        (-gp.bound(xf, yf)).backward()
        optimizer.step()
    gp.condition(x, y)
    return FittedGP(gp, inputs, targets, float(y.max()))


@dataclass(frozen=True)
class Quality:
    """How well the GP predicts held-out points (D-VAE's test RMSE, log-likelihood, Pearson r)."""

    rmse: float
    loglik: float
    pearson: float
    points: int


def gp_quality(fitted: FittedGP, latents: np.ndarray, scores: np.ndarray) -> Quality:
    """Metrics in standardised units: RMSE, mean Gaussian log-density of the truth, Pearson r.

    Args:
        fitted: the GP to judge.
        latents: the held-out points, shape (N, D), in latent units.
        scores: their true scores, shape (N,), in the objective's units.

    Returns:
        RMSE and log-likelihood (with observation noise) in standardised target units, Pearson r
        (NaN with fewer than two points or constant predictions), and N.
    """
    truth = fitted.targets.forward(scores)
    mean, var = fitted.predict(latents)
    err = mean - truth
    loglik = float(np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * err**2 / var))
    pearson = float(np.corrcoef(mean, truth)[0, 1]) if len(truth) > 1 and np.std(mean) > 0 else float("nan")
    return Quality(float(np.sqrt(np.mean(err**2))), loglik, pearson, len(truth))


def select_batch(
    fitted: FittedGP, q: int, lower: np.ndarray, upper: np.ndarray, seed: int, pending: np.ndarray | None = None
) -> np.ndarray:
    """`q` latent points by q-EI with sequential greedy optimisation inside [lower, upper].

    `pending` latent points are being evaluated: q-EI integrates over their outcomes jointly
    with the batch (BoTorch's X_pending), so the batch does not pile onto them.

    Args:
        fitted: the GP whose expected improvement over its best target is maximised.
        q: how many points to select.
        lower: the box's lower corner, shape (D,), in latent units.
        upper: the box's upper corner, shape (D,), in latent units.
        seed: seeds the quasi-MC sampler and the optimiser's restarts; the caller's torch RNG is left alone.
        pending: points being evaluated, shape (P, D), in latent units; None when there are none.

    Returns:
        The selected points, shape (q, D), float32, in latent units.
    """
    lo, hi = fitted.inputs.forward(lower), fitted.inputs.forward(upper)
    hi = np.maximum(hi, lo + 1e-6)  # BoTorch needs every box side to have some width
    bounds = torch.as_tensor(np.stack([lo, hi]), dtype=DTYPE, device=fitted.device)
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES]), seed=seed)
    waiting = (
        None if pending is None else torch.as_tensor(fitted.inputs.forward(pending), dtype=DTYPE, device=fitted.device)
    )
    acq = qLogExpectedImprovement(LatentGP(fitted.gp), best_f=fitted.best, sampler=sampler, X_pending=waiting)
    with warnings.catch_warnings(), manual_seed(seed):  # seeded without touching the caller's torch RNG
        warnings.simplefilter("ignore")  # BoTorch's optimisation-restart chatter is not for the user
        points, _ = optimize_acqf(
            acq,
            bounds,
            q=q,
            num_restarts=RESTARTS,
            raw_samples=RAW_SAMPLES,
            sequential=True,
            options={"maxiter": LBFGS_ITERS, "seed": seed},
        )
    return fitted.inputs.inverse(points.detach().cpu().numpy()).astype(np.float32)
