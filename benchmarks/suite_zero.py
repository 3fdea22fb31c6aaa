"""The NAS-Bench-Suite-Zero prediction protocol (arXiv 2210.03230) for `benchmarks/prediction.py --protocol suite-zero`.

Training sets of 10, 100 and 1,000 cells drawn at random, a disjoint test set
of 1,000 cells, 10 seeds, Spearman and Kendall on the test set.  NB201 target
``cifar10_valid_val``; NB101 the 1,000-cell file, ``val_acc_108``, with 10 /
100 / 500 training cells and a disjoint test set of 500.  Only cells whose
proxies are in the given proxy cache (`benchmarks/proxies.py --cache`) take
part: with a cache of a random subset of the space, the protocol runs on that
subset (the report says how many cells).

Feature sets: ``onehot`` (ops one-hot + adjacency), ``latents`` (the pretrained
VAE's posterior means), ``proxies`` (the predictor's proxy columns,
`model.features.FeatureSpec`), ``latents+onehot`` (svge's predictor without
proxies) and ``all``.  Regressors: ``gp`` (svge's GP head, Matern 5/2 ARD, on
rank-gauss labels, exactly as `svge finetune`), ``gp-residual`` (the GP on
latents + one-hot fitted to what a ridge regression on the proxies leaves),
``gp-additive`` (on ``all``: the sum of a Matern 5/2 ARD kernel on the proxies and
one on latents + one-hot, each with its own output scale and the dimension-scaled
length-scale prior of its own block, so four proxy columns are not judged by the
prior of some 160 dimensions),
``boosting`` (scikit-learn gradient boosting, 500 trees of depth 3) and
``forest`` (random forest, 500 trees).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
import torch

from svge_cli.arch import one_hot_cells  # noqa: E402
from svge_cli.artifacts import Checkpoint, Dataset
from svge_cli.model import checkpoints, codec
from svge_cli.model.exact_gp import JITTER, lengthscale_prior, marginal_nll, matern52, minimise, scale_priors, tensor64
from svge_cli.model.features import FeatureSpec, ProxySource, transform
from svge_cli.model.gphead import GPHead
from svge_cli.model.predictor import kendall_tau, spearman
from svge_cli.model.scaling import Scaler, fit_scale
from svge_cli.networks.proxytable import ProxySettings
from svge_cli.spaces import get_space
from svge_cli.storage.proxycache import ProxyCache

FEATURE_SETS = ("onehot", "latents", "proxies", "latents+onehot", "all")
REGRESSORS = ("gp", "gp-residual", "gp-additive", "boosting", "forest")
#: (feature set, regressor) pairs run by default: every feature set with the GP, the tree models on
#: one-hot (the classic baseline), proxies alone and everything, the residual GP once
DEFAULT_RUNS = (
    *((f, "gp") for f in FEATURE_SETS),
    ("all", "gp-residual"),
    ("all", "gp-additive"),
    ("onehot", "forest"),
    ("onehot", "boosting"),
    ("proxies", "boosting"),
    ("all", "boosting"),
)
PLAN = {"nb201": ((10, 100, 1000), 1000), "nb101": ((10, 100, 500), 500)}


def cached_rows(ds: Dataset, cache: ProxyCache, proxies: tuple[str, ...], settings: ProxySettings) -> np.ndarray:
    """Rows of `ds` with every proxy in the cache."""
    sp = get_space(ds.space)
    hashes = [sp.hash(ds.arch(i)) for i in range(len(ds))]
    ok = np.ones(len(ds), dtype=bool)
    for p in proxies:
        ok &= cache.lookup(settings.key(p), hashes)[1]
    return np.flatnonzero(ok)


def _tree(kind: str, seed: int):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    if kind == "forest":
        return RandomForestRegressor(n_estimators=500, n_jobs=1, random_state=seed)
    return GradientBoostingRegressor(
        n_estimators=500, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
    )


def _gp(x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray, onehot_dim: int, seed: int) -> np.ndarray:
    """svge's GP head on rank-gauss labels: fitted and conditioned on the training cells."""
    scale = fit_scale(y, "rank-gauss")
    torch.manual_seed(seed)
    head = GPHead(x_train.shape[1] - onehot_dim, len(x_train), onehot_dim).fit(x_train, scale.normalize(y))
    with torch.no_grad():
        return scale.restore(head(torch.as_tensor(x_test)).numpy())


def _additive_gp(blocks: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, iters: int = 60) -> np.ndarray:
    """Posterior mean at the test rows of a GP whose kernel is a sum of one Matern 5/2 ARD kernel per block.

    The fit is svge's (`model.exact_gp`: L-BFGS on the exact marginal likelihood, the same weak priors on
    output scale and noise), except that each block has its own output scale and its length-scales take the
    dimension-scaled prior of the block's width.

    Args:
        blocks: (train rows, test rows) of each feature block, raw; each is z-scored on its training rows.
        y: the training labels, already normalised.
        iters: L-BFGS iterations.

    Returns:
        The posterior mean of each test row, in the normalised label scale.
    """
    scalers = [Scaler.fit(train, axis=0) for train, _ in blocks]  # z-scored on the training rows
    xs = [(tensor64(sc.forward(train)), tensor64(sc.forward(test))) for sc, (train, test) in zip(scalers, blocks)]
    dims = [tr.shape[1] for tr, _ in xs]
    log_ls = [torch.full((d,), 0.5 * math.log(d), dtype=torch.float64, requires_grad=True) for d in dims]
    log_os = [torch.tensor(-math.log(len(dims)), dtype=torch.float64, requires_grad=True) for _ in dims]
    log_noise = torch.tensor(math.log(0.05), dtype=torch.float64, requires_grad=True)
    mean = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    yt, eye = tensor64(y), torch.eye(len(y), dtype=torch.float64)

    def kernel(side: int) -> torch.Tensor:
        return sum(matern52(x[side], x[0], ls.exp(), os.exp()) for x, ls, os in zip(xs, log_ls, log_os))

    def loss() -> torch.Tensor:
        nll = marginal_nll(kernel(0) + (1e-4 + log_noise.exp() + JITTER) * eye, yt - mean)
        nll = nll + sum(lengthscale_prior(ls, d) for ls, d in zip(log_ls, dims))
        return (nll + scale_priors(torch.stack(log_os), log_noise)) / len(y)

    minimise([*log_ls, *log_os, log_noise, mean], loss, iters)
    with torch.no_grad():
        chol = torch.linalg.cholesky(kernel(0) + (1e-4 + log_noise.exp() + 1e-6) * eye)
        alpha = torch.cholesky_solve((yt - mean)[:, None], chol)
        return (kernel(1) @ alpha).squeeze(1).numpy() + float(mean)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return w, mu, sd


class Features:
    """Every feature block of the cells taking part; proxy fills learned per training draw."""

    def __init__(self, ds: Dataset, base: Checkpoint, source: ProxySource, rows: np.ndarray) -> None:
        model = checkpoints.model_from_checkpoint(base, "cpu").eval()
        self.rows = rows
        mu, _ = codec.encode_arrays(model, ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
        self.latents = mu.astype(np.float64)
        self.onehot = one_hot_cells(ds.ops[rows], ds.adj[rows], model.cfg.vocab_size, model.cfg.max_nodes)
        self.raw = source.raw([ds.arch(int(i)) for i in rows])
        self.spec = source.spec

    def matrix(self, name: str, train: np.ndarray) -> tuple[np.ndarray, int]:
        """The feature matrix of every cell (positions into `rows`) and its one-hot width (one-hot last)."""
        spec = self.spec.fitted(transform(self.raw[train], self.spec.proxies))
        prox = spec.columns(self.raw)
        blocks = {
            "onehot": [self.onehot],
            "latents": [self.latents],
            "proxies": [prox],
            "latents+onehot": [self.latents, self.onehot],
            "all": [self.latents, prox, self.onehot],
        }[name]
        onehot_dim = self.onehot.shape[1] if name in ("onehot", "latents+onehot", "all") else 0
        return np.concatenate(blocks, axis=1), onehot_dim


def fit_predict(feats: Features, fset: str, reg: str, train: np.ndarray, test: np.ndarray, y: np.ndarray, seed: int):
    x, onehot_dim = feats.matrix(fset, train)
    if reg == "gp":
        return _gp(x[train], y[train], x[test], onehot_dim, seed)
    if reg == "gp-residual":
        p, _ = feats.matrix("proxies", train)
        w, mu, sd = _ridge(p[train], y[train])
        prior = ((p - mu) / sd) @ w + y[train].mean()
        xl, od = feats.matrix("latents+onehot", train)
        return prior[test] + _gp(xl[train], y[train] - prior[train], xl[test], od, seed)
    if reg == "gp-additive":
        p, _ = feats.matrix("proxies", train)
        xl, _ = feats.matrix("latents+onehot", train)
        scale = fit_scale(y[train], "rank-gauss")
        blocks = [(p[train], p[test]), (xl[train], xl[test])]
        return scale.restore(_additive_gp(blocks, scale.normalize(y[train])))
    return _tree(reg, seed).fit(x[train], y[train]).predict(x[test])


def run_space(
    ds: Dataset, base: Checkpoint, target: str, cache: ProxyCache, spec: FeatureSpec, seeds: range, runs
) -> dict[str, Any]:
    rows = cached_rows(ds, cache, spec.proxies, spec.settings)
    values = np.asarray(ds.labels[target], dtype=np.float64)
    rows = rows[np.isfinite(values[rows])]
    sizes, n_test = PLAN[ds.space]
    if len(rows) < max(sizes) + n_test:
        raise SystemExit(f"error: only {len(rows)} {ds.space} cells have cached proxies; need {max(sizes) + n_test}")
    feats = Features(ds, base, ProxySource(get_space(ds.space), spec, cache=cache, workers=1), rows)
    y = values[rows]
    table: dict[str, dict[str, Any]] = {}
    for size in sizes:
        for fset, reg in runs:
            per_seed = []
            began = time.perf_counter()
            for seed in seeds:
                perm = np.random.default_rng(seed).permutation(len(rows))
                test, train = perm[:n_test], perm[n_test : n_test + size]
                pred = fit_predict(feats, fset, reg, train, test, y, seed)
                per_seed.append({"spearman": spearman(y[test], pred), "kendall": kendall_tau(y[test], pred)})
            cell = {
                k: {"mean": float(np.mean([r[k] for r in per_seed])), "std": float(np.std([r[k] for r in per_seed]))}
                for k in ("spearman", "kendall")
            }
            cell["seconds_per_seed"] = round((time.perf_counter() - began) / len(seeds), 2)
            table[f"{size}/{fset}/{reg}"] = cell
            print(
                f"  {ds.space} {size:>5} labels {fset:>15} {reg:<11} spearman {cell['spearman']['mean']:.3f} "
                f"+/- {cell['spearman']['std']:.3f}  kendall {cell['kendall']['mean']:.3f}",
                file=sys.stderr,
                flush=True,
            )
    return {"cells": len(rows), "target": target, "test": n_test, "proxies": list(spec.proxies), "results": table}
