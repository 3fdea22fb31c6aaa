"""The GP head of `svge finetune --head gp`: fitted on the frozen VAE's latent means, in one process."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from svge_cli.arch import one_hot_cells
from svge_cli.artifacts import Dataset
from svge_cli.console import Ui
from svge_cli.model import SVGe, codec
from svge_cli.model.features import FeatureSpec, ProxySource, transform
from svge_cli.model.gphead import GPHead
from svge_cli.model.predictor import Predictor, kendall_tau
from svge_cli.model.scaling import LabelScale
from svge_cli.networks.proxytable import settings_for
from svge_cli.spaces import get_space
from svge_cli.training.labels import FinetuneConfig, LabelDraw

History = list[dict[str, Any]]


def proxy_source(ds: Dataset, names: tuple[str, ...], ui: Ui | None = None) -> ProxySource:
    """The proxies `names` of `ds`'s space with its default settings; cached in `ui`'s workspace if given.

    Args:
        ds: the dataset whose space builds and scores the cells.
        names: the zero-cost proxies to compute, in column order.
        ui: the console and workspace; None computes without a progress bar and caches in memory only.

    Returns:
        A source that looks the proxies up in the cache and computes the missing ones.
    """
    sp = get_space(ds.space)
    return ProxySource(sp, FeatureSpec(names, settings_for(sp)), ui)


def _proxy_block(ds: Dataset, rows: np.ndarray, train: np.ndarray, source: ProxySource) -> np.ndarray:
    """Proxy columns of `rows` (zeros elsewhere), their fills learned on the `train` rows (kept in source.spec)."""
    raw = np.full((len(ds), len(source.spec.proxies)), np.nan)
    raw[rows] = source.raw([ds.arch(int(i)) for i in rows])
    source.spec = source.spec.fitted(transform(raw[train], source.spec.proxies))
    block = np.zeros_like(raw)
    block[rows] = source.spec.columns(raw[rows])
    return block


def fit_gp(
    model: SVGe,
    ds: Dataset,
    y: np.ndarray,
    scale: LabelScale,
    target: str,
    draw: LabelDraw,
    cfg: FinetuneConfig,
    proxies: ProxySource | None = None,
) -> tuple[Predictor, History]:
    """GP head on the frozen model's latent means (beside proxies and one-hot cells, as cfg says):
    hyper-parameters learned on draw.train, judged on draw.validation (the history's one entry),
    then the posterior conditioned on every drawn cell.

    Args:
        model: the trained VAE, left frozen; the GP reads its latent means.
        ds: the labelled dataset whose rows `draw` and `y` index.
        y: the standardised label of every row of `ds`, (M,).
        scale: the label scale that produced `y`; it restores predictions to the label's units.
        target: the name of the label column, recorded in the predictor.
        draw: the rows the hyper-parameters are learned on (train) and judged on (validation).
        cfg: the settings: seed, one-hot features and the proxies read beside the latent mean.
        proxies: a cached source of cfg.proxies; None computes them with the space's default settings.

    Returns:
        The predictor and a one-entry history with val_mse (standardised), val_rmse (label units),
        val_kendall and seconds; its loss, vae and mse are NaN.
    """
    began = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model.eval()
    mu, _ = codec.encode_arrays(model, ds.ops, ds.adj, ds.n_nodes)
    blocks = [mu.astype(np.float64)]
    source = None
    if cfg.proxies:
        source = proxies if proxies is not None else proxy_source(ds, cfg.proxies)
        blocks.append(_proxy_block(ds, draw.drawn, draw.train, source))
    onehot_dim = 0
    if cfg.onehot:
        blocks.append(one_hot_cells(ds.ops, ds.adj, model.cfg.vocab_size, model.cfg.max_nodes))
        onehot_dim = blocks[-1].shape[1]
    x = np.concatenate(blocks, axis=1)
    head = GPHead(model.cfg.latent, len(draw.train), onehot_dim, len(cfg.proxies)).fit(x[draw.train], y[draw.train])
    features = source.spec if source is not None else FeatureSpec()
    predictor = Predictor(model, head, scale, target, features, source)
    with torch.no_grad():
        val = head(torch.as_tensor(x[draw.validation])).numpy()
    val_mse = float(np.mean((val - y[draw.validation]) ** 2))
    truth = scale.restore(y[draw.validation])
    val_rmse = float(np.sqrt(np.mean((scale.restore(val) - truth) ** 2)))
    val_tau = kendall_tau(truth, val) if len(val) > 1 else float("nan")
    drawn = draw.drawn
    head.condition(x[drawn], y[drawn])
    return predictor, [
        {
            "epoch": 1,
            "lr": 0.0,
            "loss": float("nan"),
            "vae": float("nan"),
            "mse": float("nan"),
            "val_mse": val_mse,
            "val_rmse": val_rmse,
            "val_kendall": val_tau,
            "seconds": time.perf_counter() - began,
        }
    ]
