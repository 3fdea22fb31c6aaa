"""Pool Bayesian optimisation: a GP on every cell's feature vector ranks the cells not yet queried.

Pool BO (`PoolBO`) is the search for enumerable spaces: every cell's feature vector (latent
mean, z-scored) is known in advance, so the acquisition ranks the not-yet-queried cells
themselves -- nothing to decode, nothing invalid, no duplicates.  A batch is chosen greedily:
with the kriging believer (``kb``) each pick is treated as observed at its predicted mean
before the next pick, which shrinks the variance around it and spreads the batch out;
``topk`` takes the q best acquisition values at once (arch2vec's rule).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from svge_cli.artifacts import Dataset
from svge_cli.model import checkpoints
from svge_cli.model.features import pool_features, proxy_source
from svge_cli.search.pool import onehot_features, pool_latents, zscore
from svge_cli.search.registry import SearchContext, register
from svge_cli.search.strategies import DEFAULT_BATCH, History, SearchError, Strategy, unqueried
from svge_cli.search.surrogates import PriorMeanGP, Surrogate, make_surrogate, transform_targets

#: what pool search's GP may see of a cell (`svge bo --features`): latent means, one-hot cells, latent
#: means beside the proxies in the kernel, or latent means in the kernel over a prior mean read from the proxies
LATENT, ONEHOT, LATENT_PROXIES, PROXY_PRIOR = "latent", "onehot", "latent+proxies", "latent+proxy-prior"
FEATURES = (LATENT, ONEHOT, LATENT_PROXIES, PROXY_PRIOR)


def expected_improvement(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """Closed-form expected improvement over `best` of Gaussian predictions (maximisation).

    Args:
        mean: the surrogate's predicted mean of each candidate, (M,).
        var: the predicted variance of each candidate, (M,); floored at 1e-18 so none is exactly 0.
        best: the incumbent, in the same (transformed) target units as `mean`.

    Returns:
        The expected improvement of each candidate, (M,), never negative.
    """
    sd = np.sqrt(np.maximum(var, 1e-18))
    z = (mean - best) / sd
    return sd * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def acquisition(name: str, mean: np.ndarray, var: np.ndarray, best: float, beta: float) -> np.ndarray:
    """The value of acquisition `name` for each candidate; the caller picks the largest.

    Thompson sampling (``ts``) is not computed here: `PoolBO` samples the joint posterior itself.

    Args:
        name: ``ei`` (expected improvement), ``ucb`` (upper confidence bound) or ``mean`` (exploit only).
        mean: predicted mean of each candidate, (M,).
        var: predicted variance of each candidate, (M,).
        best: the incumbent in target units; read by ``ei`` only.
        beta: how many predicted standard deviations ``ucb`` adds to the mean; ignored by the others.

    Returns:
        One value per candidate, (M,).

    Raises:
        SearchError: for any other `name`.
    """
    if name == "ei":
        return expected_improvement(mean, var, best)
    if name == "ucb":
        return mean + beta * np.sqrt(np.maximum(var, 0))
    if name == "mean":
        return mean
    raise SearchError(f"unknown acquisition {name!r} (ei, ucb, ts, mean)")


class PoolBO:
    """Bayesian optimisation over a finite pool of cells given as feature vectors.

    Round 0 queries `init` random cells; each later round fits the surrogate on every
    scored cell (targets transformed by `target`, see `transform_targets`) and picks a
    batch among the unqueried cells:

    * the acquisition (`ei`, `ucb` with `beta`, or `ts` Thompson sampling) is computed for
      every unqueried cell from marginal predictions;
    * the `shortlist` best cells get a joint posterior, and the batch is picked greedily on
      it: ``kb`` conditions on each pick at its predicted mean (kriging believer; exact
      rank-one updates) before the next, ``topk`` takes the best `n` at once.  Thompson
      sampling draws one joint sample of the shortlist per pick instead.

    `local` > 0 restricts candidates to the `local` nearest unqueried cells (Euclidean in
    feature space) of each of the best 5 cells seen, a trust-region-like focus for large
    budgets; 0 ranks the whole pool.

    Args:
        features: the (cells, columns) matrix of the pool, one row per cell; candidates are row indices.
        surrogate: a surrogate name (``gp``, ``gp-ard``, ``dngo``) or a ready `Surrogate` to fit.
        init: random cells queried before the first fit (at least 1).
        acquisition: ``ei``, ``ucb``, ``ts`` or ``mean``.
        batch_rule: ``kb`` (kriging believer) or ``topk``; how a batch of several cells is chosen.
        target: how scores are transformed before the fit: ``none``, ``rank`` or ``log``.
        shortlist: how many best cells by marginal acquisition get the joint posterior a batch is picked on.
        beta: the exploration weight of ``ucb``.
        local: nearest unqueried cells kept around each of the 5 best cells; 0: the whole pool.
        seed: seeds a surrogate built from its name; unused for a `Surrogate` given ready.

    Raises:
        SearchError: for an empty pool or an unknown batch rule.
    """

    name = "pool"

    def __init__(
        self,
        features: np.ndarray,
        surrogate: str | Surrogate = "gp",
        init: int = 10,
        acquisition: str = "ei",
        batch_rule: str = "kb",
        target: str = "none",
        shortlist: int = 512,
        beta: float = 2.0,
        local: int = 0,
        seed: int = 0,
    ) -> None:
        if len(features) < 1:
            raise SearchError("the pool is empty")
        if batch_rule not in ("kb", "topk"):
            raise SearchError(f"unknown batch rule {batch_rule!r} (kb, topk)")
        self.features = np.asarray(features, dtype=np.float64)
        self.model = make_surrogate(surrogate, seed) if isinstance(surrogate, str) else surrogate
        self.init, self.acq, self.batch_rule, self.target = max(1, init), acquisition, batch_rule, target
        self.shortlist, self.beta, self.local = shortlist, beta, local
        self.last_fit_seconds = 0.0

    def key(self, candidate: int) -> int:
        return int(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Any] = ()
    ) -> list[int]:
        """Pool rows to query next: random draws at first, then the surrogate's picks.

        Draws are random while fewer than `init` cells are queried or pending, or while there are
        fewer than two finite scores or all are equal; after that the surrogate is fitted on them.

        Args:
            history: every query of this trial so far (candidates are pool rows).
            n: the batch size asked for.
            limit: the most cells that may be returned (the budget left); the initial random design
                may return up to this many, more than `n`, so that it forms one round.
            rng: the round's random generator (initial draws and Thompson samples).
            pending: pool rows being evaluated now; never proposed, and conditioned on at their
                predicted means.

        Returns:
            Distinct pool rows neither queried nor pending, in the order they were picked.
        """
        free = unqueried(len(self.features), history, pending)
        cells, scores = history.scored()
        started = len(history) + len(pending)
        if started < self.init or len(scores) < 2 or np.ptp(scores) == 0:
            k = min(max(n, self.init - started), limit, len(free))
            return [int(i) for i in rng.choice(free, size=k, replace=False)]
        n = min(n, len(free))
        idx = np.asarray(cells, dtype=np.int64)
        y = transform_targets(scores, self.target)
        start = time.perf_counter()
        self.model.fit(self.features[idx], y)
        self.last_fit_seconds = time.perf_counter() - start
        if self.local > 0:
            free = self._local(free, idx, scores)
        mean, var = self.model.predict(self.features[free])
        best = float(y.max())
        if self.acq == "ts":
            first = acquisition("ucb", mean, var, best, 3.0)
        else:
            first = acquisition(self.acq, mean, var, best, self.beta)
        if self.batch_rule == "topk" and self.acq != "ts":
            return [int(free[i]) for i in _top(first, n)]
        short = _top(first, min(max(self.shortlist, n), len(free)))
        m, cov, best = self._believe(np.asarray(pending, dtype=np.int64), free[short], best)
        picks = self._greedy(m, cov, best, n, rng)
        return [int(free[short[i]]) for i in picks]

    def _believe(self, pending: np.ndarray, short: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Joint posterior of the shortlist given the pending cells observed at their predicted means.

        The kriging believer for asynchronous search: the means stay, the covariance shrinks
        around every cell still being evaluated, exactly as for the earlier picks of a batch.
        """
        if not len(pending):
            m, cov = self.model.joint(self.features[short])
            return m, cov, best
        mean, cov = self.model.joint(self.features[np.concatenate([pending, short])])
        p = len(pending)
        c_pp = cov[:p, :p] + float(self.model.noise) * np.eye(p)
        c_sp = cov[p:, :p]
        cov_s = cov[p:, p:] - c_sp @ np.linalg.solve(c_pp, c_sp.T)
        return mean[p:], cov_s, max(best, float(mean[:p].max()))

    def _greedy(self, mean: np.ndarray, cov: np.ndarray, best: float, n: int, rng: np.random.Generator) -> list[int]:
        """`n` shortlist positions, each chosen after conditioning on the previous picks."""
        mean, cov = mean.copy(), cov.copy()
        noise = float(self.model.noise)
        taken: list[int] = []
        for _ in range(n):
            if self.acq == "ts":
                sample = _joint_sample(mean, cov, rng)
                sample[taken] = -np.inf
                j = int(np.argmax(sample))
            else:
                a = acquisition(self.acq, mean, np.diag(cov), best, self.beta)
                a[taken] = -np.inf
                j = int(np.argmax(a))
            taken.append(j)
            # kriging believer: observe the pick at its mean -> the mean stays, the covariance shrinks
            c = cov[:, j].copy()
            cov -= np.outer(c, c) / (c[j] + noise)
            best = max(best, float(mean[j]))
        return taken

    def _local(self, free: np.ndarray, idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The unqueried cells among the `local` nearest of each of the 5 best queried cells."""
        top = idx[np.argsort(-scores)[:5]]
        f = self.features[free]
        keep = np.zeros(len(free), dtype=bool)
        for t in top:
            d = np.square(f - self.features[t]).sum(1)
            keep[np.argpartition(d, min(self.local, len(d) - 1))[: self.local]] = True
        return free[keep]


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, best first (ties by index, so runs are reproducible)."""
    k = min(k, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.lexsort((part, -values[part]))]


def _joint_sample(mean: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return mean + vecs @ (np.sqrt(np.clip(vals, 0, None)) * rng.standard_normal(len(mean)))


#: the default pool search, chosen by benchmarks/search.py on NB201 validation accuracy (docs/search.md):
#: isotropic Matern 5/2 GP on z-scored latent means, rank (Gaussian-copula) targets, 10 random
#: initial cells, batches of 5 by expected improvement with the kriging believer.  The rank
#: transform is what keeps NB201's long tail of broken cells (10% accuracy) from flattening the
#: GP's view of the top: with plain z-scored targets 2 of 20 seeds stalled for 100+ queries.
DEFAULT_POOL = {"surrogate": "gp", "init": 10, "acquisition": "ei", "batch_rule": "kb", "target": "rank"}


@register("pool", "BO over every cell of an enumerable space, ranked by a GP on their latents", DEFAULT_BATCH,
          rank=0, needs_pool=True)  # fmt: skip
def build_pool(ctx: SearchContext, req: Any) -> Callable[[int], Strategy]:
    """The default pool search (`DEFAULT_POOL`) on the features asked for; every trial shares them."""
    assert ctx.pool is not None
    features, prior_columns = pool_feature_matrix(ctx, ctx.pool, req.features, req.options.device)
    options = DEFAULT_POOL | ({"init": req.init} if req.init else {})
    return lambda seed: PoolBO(features, **(options | pool_surrogate(prior_columns, req.seed)), seed=req.seed)


def pool_surrogate(prior_columns: int, seed: int) -> dict[str, Any]:
    """`DEFAULT_POOL`'s surrogate, under a prior mean on the trailing `prior_columns` when there are any."""
    if not prior_columns:
        return {}
    return {"surrogate": PriorMeanGP(prior_columns, make_surrogate(DEFAULT_POOL["surrogate"], seed))}


def pool_feature_matrix(ctx: SearchContext, pool: Dataset, features: str, device: str) -> tuple[np.ndarray, int]:
    """What pool search's GP sees of every cell, and how many trailing columns feed its prior mean instead.

    Args:
        ctx: the search's workspace, space and checkpoint (none: one-hot cells).
        pool: every cell of the space, in pool order.
        features: one of `FEATURES`.
        device: where the checkpoint encodes the pool (its latents are cached per checkpoint).

    Returns:
        The (cells, columns) float64 matrix: z-scored latent means, the same beside the space's
        default zero-cost proxies (cached per cell in the workspace; balanced against the latent
        block in the kernel, plain z-scores for the prior mean), or one-hot cells; and the number
        of proxy columns the prior mean reads (0 unless `features` is PROXY_PRIOR).
    """
    if features == ONEHOT or ctx.source is None:
        return onehot_features(pool, ctx.space).astype(np.float64), 0
    ck, ck_path = ctx.source
    began = time.perf_counter()
    lat, cached = pool_latents(ctx.ui.workspace, ck, pool, device=checkpoints.pick_device(device))
    if not cached:
        ctx.ui.note(
            f"encoded all {len(pool):,} {ctx.space.name} cells with {ck_path.name} in "
            f"{time.perf_counter() - began:.1f} s (cached in the workspace for this checkpoint)"
        )
    if features in (LATENT_PROXIES, PROXY_PRIOR):
        archs = [pool.arch(i) for i in range(len(pool))]
        matrix = pool_features(lat.mu, archs, proxy_source(ctx.ui, ctx.space), balance=features == LATENT_PROXIES)
        proxy_columns = matrix.shape[1] - lat.mu.shape[1]
        return matrix, proxy_columns if features == PROXY_PRIOR else 0
    return zscore(lat.mu), 0
