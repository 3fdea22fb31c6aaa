"""An exact GP head: scores (and their uncertainty) from a cell's latent mean, optionally beside its proxies
and its one-hot cell.

The GP is svge's one exact GP (`svge_cli.model.exact_gp`, the same kernel and fit
as pool search's): Matern 5/2 with one length-scale per input (ARD, under the
dimension-scaled prior) on inputs z-scored with the fitted cells' statistics, plus
a constant mean and Gaussian noise, hyper-parameters by L-BFGS on the exact
marginal likelihood in float64.  With a thousand labelled cells the N x N Cholesky
costs milliseconds, so no sparse approximation is needed.

The fitted cells, the hyper-parameters and the input scaling are the module's
buffers, so a fine-tuned checkpoint stores the head like any other weights
(``regressor.*`` state arrays) and `config()` records the shapes to rebuild it.

Columns are ordered latent mean, proxies, one-hot cell.  A cell larger than the
one-hot block allows has no one-hot columns: `forward` and `spread` then take
the latent and proxy columns alone and use the kernel with the one-hot
dimensions left out (the same hyper-parameters, the same fitted cells), which
is how a predictor scores cells larger than any it was fitted on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from svge_cli.model.exact_gp import ExactGP, matern52

DTYPE = torch.float64
FIT_ITERS = 30  # L-BFGS iterations of the marginal-likelihood fit
JITTER = 1e-6
PREDICT_BATCH = 4096


class GPHead(nn.Module):
    """Exact GP regression on fixed inputs; `forward` gives the posterior mean, `spread` its std.

    The buffers are zero-filled at construction: a checkpoint's state dict (or a fit) fills them.

    Args:
        in_dim: latent columns of an input row.
        n_train: the training points the posterior conditions on.
        onehot_dim: one-hot cell columns after the dense ones; 0 for a latent-only head.
        proxy_dim: zero-cost proxy columns after the latent ones; 0 when the head reads no proxies.
    """

    def __init__(self, in_dim: int, n_train: int, onehot_dim: int = 0, proxy_dim: int = 0) -> None:
        super().__init__()
        self.in_dim, self.n_train, self.onehot_dim = int(in_dim), int(n_train), int(onehot_dim)
        self.proxy_dim = int(proxy_dim)
        d = self.dense_dim + self.onehot_dim
        for name, shape in (
            ("train_x", (self.n_train, d)),
            ("train_y", (self.n_train,)),
            ("log_lengthscale", (d,)),
            ("log_outputscale", ()),
            ("log_noise", ()),
            ("mean", ()),
            ("x_mean", (d,)),
            ("x_std", (d,)),
        ):
            self.register_buffer(name, torch.zeros(shape, dtype=DTYPE))
        self._factors: dict[int, tuple[Tensor, Tensor]] = {}

    @property
    def dense_dim(self) -> int:
        """Latent and proxy columns: every column but the one-hot block."""
        return self.in_dim + self.proxy_dim

    # ------------------------------------------------------------ kernel and posterior

    def _kernel(self, a: Tensor, b: Tensor, log_ls: Tensor, log_os: Tensor) -> Tensor:
        return matern52(a, b, log_ls.exp(), log_os.exp())

    def _scaled(self, x: Tensor) -> Tensor:
        """z-scored inputs; `x` may carry every column or only the dense ones (no one-hot block)."""
        w = self._width(x)
        return (x.to(DTYPE) - self.x_mean[:w]) / self.x_std[:w]

    def _width(self, x: Tensor) -> int:
        w = x.shape[1]
        if w not in (self.dense_dim, self.dense_dim + self.onehot_dim):
            raise ValueError(
                f"the GP head reads {self.dense_dim + self.onehot_dim} or {self.dense_dim} columns, not {w}"
            )
        return w

    def _cross(self, x: Tensor) -> Tensor:
        """Kernel between inputs and the fitted cells, on the columns `x` has."""
        w = self._width(x)
        return self._kernel(
            self._scaled(x), self._scaled(self.train_x[:, :w]), self.log_lengthscale[:w], self.log_outputscale
        )

    def _posterior(self, width: int) -> tuple[Tensor, Tensor]:
        if width not in self._factors:
            x = self._scaled(self.train_x[:, :width])
            k = self._kernel(x, x, self.log_lengthscale[:width], self.log_outputscale)
            k = k + (self.log_noise.exp() + JITTER) * torch.eye(len(x), dtype=DTYPE, device=x.device)
            chol = torch.linalg.cholesky(k)
            self._factors[width] = (chol, torch.cholesky_solve((self.train_y - self.mean)[:, None], chol))
        return self._factors[width]

    def _apply(self, fn, *args, **kwargs):  # moving the buffers invalidates the cached factors
        self._factors = {}
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._factors = {}
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        _, alpha = self._posterior(self._width(x))
        out = [self._cross(x[s : s + PREDICT_BATCH]) @ alpha for s in range(0, len(x), PREDICT_BATCH)]
        return (torch.cat(out).squeeze(1) + self.mean).to(x.dtype) if out else x.new_zeros(0)

    @torch.no_grad()
    def spread(self, x: Tensor) -> Tensor:
        """Posterior standard deviation of the latent function (noise excluded), (B,)."""
        chol, _ = self._posterior(self._width(x))
        out = []
        for s in range(0, len(x), PREDICT_BATCH):
            ks = self._cross(x[s : s + PREDICT_BATCH])
            v = torch.linalg.solve_triangular(chol, ks.T, upper=False)
            out.append((self.log_outputscale.exp() - (v * v).sum(0)).clamp_min(0).sqrt())
        return torch.cat(out).to(x.dtype) if out else x.new_zeros(0)

    # ------------------------------------------------------------ fitting

    def fit(self, x: np.ndarray, y: np.ndarray, iters: int = FIT_ITERS) -> "GPHead":
        """Learn the hyper-parameters on (x, y) with svge's exact GP fit (ARD), then condition on them.

        Args:
            x: the labelled cells' features, (N, in_dim); the one-hot block, if any, is left unscaled.
            y: their labels, (N,), in the scale the head predicts.
            iters: L-BFGS iterations of the marginal-likelihood fit.

        Returns:
            This head, fitted and conditioned on (x, y).
        """
        xt = torch.as_tensor(np.asarray(x), dtype=DTYPE)
        self.x_mean.copy_(xt.mean(0))
        std = xt.std(0)
        self.x_std.copy_(torch.where(std > 1e-9, std, torch.ones_like(std)))
        if self.onehot_dim:  # one-hot columns stay 0 / 1: their distances count differing ops and edges
            self.x_mean[self.dense_dim :] = 0
            self.x_std[self.dense_dim :] = 1
        gp = ExactGP(ard=True, iters=iters, warm=False)
        gp.fit(self._scaled(xt).numpy(), np.asarray(y, dtype=np.float64))
        with torch.no_grad():
            self.log_lengthscale.copy_(torch.as_tensor(gp.params.log_lengthscale, dtype=DTYPE))
            self.log_outputscale.fill_(gp.params.log_outputscale)
            self.log_noise.fill_(math.log(gp.noise))
            self.mean.fill_(gp.params.mean)
        return self.condition(x, y)

    def condition(self, x: np.ndarray, y: np.ndarray) -> "GPHead":
        """Keep the hyper-parameters and input scaling; make (x, y) the cells the posterior rests on."""
        xt = torch.as_tensor(np.asarray(x), dtype=DTYPE)
        self.n_train = len(xt)
        self.train_x = xt.to(self.x_mean.device)
        self.train_y = torch.as_tensor(np.asarray(y), dtype=DTYPE, device=self.x_mean.device)
        self._factors = {}
        return self

    def config(self) -> dict[str, Any]:
        return {
            "kind": "gp",
            "in_dim": self.in_dim,
            "n_train": self.n_train,
            "onehot_dim": self.onehot_dim,
            "proxy_dim": self.proxy_dim,
        }

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> "GPHead":
        return cls(
            int(data["in_dim"]), int(data["n_train"]), int(data.get("onehot_dim", 0)), int(data.get("proxy_dim", 0))
        )
