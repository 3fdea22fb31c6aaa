"""Scores from a fine-tuned checkpoint, and how well they agree with the truth (paper Sec. IV-C).

A fine-tuned checkpoint is a VAE checkpoint plus: the regressor's tensors in its
state arrays under ``regressor.``, the regressor's widths in ``config["regressor"]``,
the label scaling and target column in ``meta``, and the rows (and hashes) of the
cells it was fine-tuned on in ``arrays``, so predictions can be judged on cells
it has never seen.

The metrics are written out here (numpy only) so that their tie handling is
explicit: ranks of tied values are averaged (Spearman), Kendall's tau is tau-b.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from svge_cli.arch import Arch, pad_batch
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec, load_state_arrays, state_arrays
from svge_cli.model.gphead import GPHead, one_hot_cells
from svge_cli.model.regressor import STATE_PREFIX, Regressor, RegressorEnsemble, head_from_config
from svge_cli.model.scaling import Scaler
from svge_cli.spaces import SearchSpace
from svge_cli.storage import checkpoints, datasets, store
from svge_cli.storage.store import Checkpoint, Dataset
from svge_cli.storage.workspace import Workspace

USED_HASHES = "used_hashes"  # arrays key: hashes of every cell the regressor was fitted or validated on


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


def _ndtri(p: np.ndarray) -> np.ndarray:
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
        ranks = average_ranks(v)
        knots_y, first = np.unique(v, return_index=True)
        z = _ndtri((ranks[first] - 0.5) / len(v))
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


def scale_from_checkpoint(ck: Checkpoint) -> LabelScale:
    """The label scale a fine-tuned checkpoint stored (no label_transform: plain standardisation, as before)."""
    mean, std = float(ck.meta["label_mean"]), float(ck.meta["label_std"])
    if ck.meta.get("label_transform", "standard") == "standard":
        return LabelScale(mean, std)
    return RankGaussScale(
        mean,
        std,
        np.asarray(ck.arrays["label_knots_y"], dtype=np.float64),
        np.asarray(ck.arrays["label_knots_z"], dtype=np.float64),
    )


@dataclass
class Predictor:
    """A fitted predictor: the encoder's posterior mean (beside the one-hot cell for a GP head that reads
    it), then the head (a regressor, an ensemble of them, or a GP), then the label scale."""

    model: SVGe
    head: Regressor | RegressorEnsemble | GPHead
    scale: LabelScale
    target: str

    @property
    def has_uncertainty(self) -> bool:
        return isinstance(self.head, GPHead) or (isinstance(self.head, RegressorEnsemble) and len(self.head.heads) > 1)

    @property
    def reads_cells(self) -> bool:
        """Whether the head needs the one-hot cell beside its latent mean."""
        return isinstance(self.head, GPHead) and self.head.onehot_dim > 0

    def _inputs(self, mu: np.ndarray, ops: np.ndarray | None, adj: np.ndarray | None) -> torch.Tensor:
        dev = codec.model_device(self.model)
        if not self.reads_cells:
            dtype = torch.float64 if isinstance(self.head, GPHead) else torch.float32
            return torch.as_tensor(np.asarray(mu), dtype=dtype, device=dev)
        if ops is None or adj is None:  # latent points only: their greedy decodes are the cells
            ops, adj, _ = pad_batch(
                codec.decode_once(self.model, np.asarray(mu, dtype=np.float32), True, None, None),
                self.model.cfg.max_nodes,
            )
        if ops.shape[1] > self.model.cfg.max_nodes and (ops[:, self.model.cfg.max_nodes :] >= 0).any():
            raise SvgeError(
                f"this predictor's GP reads one-hot cells of at most {self.model.cfg.max_nodes} nodes; "
                "for larger cells (e.g. svge extrapolate) fine-tune with --latent-only"
            )
        feats = one_hot_cells(
            ops[:, : self.model.cfg.max_nodes],
            adj[:, : self.model.cfg.max_nodes, : self.model.cfg.max_nodes],
            self.model.cfg.vocab_size,
            self.model.cfg.max_nodes,
        )
        return torch.as_tensor(np.concatenate([np.asarray(mu, dtype=np.float64), feats], axis=1), device=dev)

    @torch.inference_mode()
    def _predict(
        self, mu: np.ndarray, ops: np.ndarray | None = None, adj: np.ndarray | None = None, spread: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.head.eval()
        if not len(mu):
            return np.zeros(0), (np.zeros(0) if spread and self.has_uncertainty else None)
        x = self._inputs(mu, ops, adj)
        mean = self.head(x).cpu().numpy().astype(np.float64)
        sd = None
        if spread and self.has_uncertainty:
            sd = self.scale.restore_spread(mean, self.head.spread(x).cpu().numpy().astype(np.float64))
        return self.scale.restore(mean), sd

    def from_latents(self, mu: np.ndarray) -> np.ndarray:
        """Scores, in the label's own units, of latent points (posterior means)."""
        return self._predict(mu)[0]

    def spread_from_latents(self, mu: np.ndarray) -> np.ndarray | None:
        """The head's uncertainty per point (label units, one standard deviation); None without one."""
        return self._predict(mu, spread=True)[1]

    def with_spread(
        self, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and (for a GP or an ensemble) their uncertainty, from one encoding pass."""
        self.model.eval()
        mu, _ = codec.encode_arrays(self.model, ops, adj, n_nodes)
        return self._predict(mu, ops, adj, spread=True)

    def from_arrays(self, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray) -> np.ndarray:
        self.model.eval()
        mu, _ = codec.encode_arrays(self.model, ops, adj, n_nodes)
        return self._predict(mu, ops, adj)[0]

    def from_archs(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.from_arrays(*pad_batch(archs))


def is_finetuned(ck: Checkpoint) -> bool:
    return "regressor" in ck.config


def predictor_state(predictor: Predictor) -> dict[str, np.ndarray]:
    """VAE and regressor tensors in one dict, the regressor's under STATE_PREFIX."""
    head = {STATE_PREFIX + k: v for k, v in state_arrays(predictor.head).items()}
    return state_arrays(predictor.model) | head


def load_predictor(ck: Checkpoint, device: torch.device | str = "cpu") -> Predictor:
    """Rebuild the fine-tuned model a checkpoint holds; SvgeError when it holds a plain VAE."""
    if not is_finetuned(ck):
        raise SvgeError(
            f"this {ck.space} checkpoint has no regressor: run `svge finetune --space {ck.space}` "
            "first, or pass a fine-tuned one with --checkpoint"
        )
    model = checkpoints.model_from_checkpoint(ck, device)
    try:
        head = head_from_config(ck.config["regressor"])
        load_state_arrays(head, {k[len(STATE_PREFIX) :]: v for k, v in ck.state.items() if k.startswith(STATE_PREFIX)})
        scale = scale_from_checkpoint(ck)
        target = str(ck.meta["target"])
    except (KeyError, TypeError, ValueError) as e:
        raise SvgeError(f"the fine-tuned checkpoint is incomplete or damaged ({e})") from None
    return Predictor(model, head.to(device).eval(), scale, target)


def latent_scores(ck: Checkpoint, mu: np.ndarray) -> np.ndarray | None:
    """Predicted scores of latent points when `ck` is fine-tuned, else None (nothing to colour by)."""
    return load_predictor(ck).from_latents(mu) if is_finetuned(ck) else None


def used_hashes(ck: Checkpoint) -> set[str]:
    """Hashes of the cells a fine-tuned checkpoint was fitted or validated on."""
    raw = ck.arrays.get(USED_HASHES, np.zeros(0, dtype="S1"))
    return {h.decode() if isinstance(h, bytes) else str(h) for h in raw.tolist()}


def labelled_dataset(ws: Workspace, space: SearchSpace, path: str | None) -> tuple[Dataset, str]:
    """An explicit dataset file, else the workspace's import for the space; and a name for messages."""
    if path is not None:
        return store.load_dataset(path, space.name), path
    ds = datasets.workspace_dataset(space, ws)
    if ds is None:
        raise SvgeError(
            f"no imported {space.name} dataset in {ws.root}: run `svge data import {space.name} FILE` "
            "or pass --dataset FILE"
        )
    return ds, str(ws.dataset_path(space.name))


def label_column(ds: Dataset, column: str, source: str) -> np.ndarray:
    """The values of a label column; SvgeError naming the available ones when it is missing."""
    if column not in ds.labels:
        available = ", ".join(sorted(ds.labels)) or "none"
        raise SvgeError(f"{source} has no label column {column!r} (available: {available})")
    return np.asarray(ds.labels[column], dtype=np.float64)


@dataclass
class TruthMatch:
    """Which input cells can be judged: their positions in the input and their true values."""

    positions: np.ndarray
    truth: np.ndarray
    used: int  # cells left out because the regressor saw them
    unknown: int  # cells not in the dataset, or without a value in the column


def match_truth(hashes: Sequence[str], ds: Dataset, values: np.ndarray, exclude: set[str]) -> TruthMatch:
    """Look input cells up in a dataset by hash, leaving out those in `exclude` and those without truth."""
    row_of: dict[str, int] = {}
    for i, h in enumerate(ds.hashes.tolist()):
        row_of.setdefault(h, i)
    positions, truth, used, unknown = [], [], 0, 0
    for pos, h in enumerate(hashes):
        row = row_of.get(h)
        if h in exclude:
            used += 1
        elif row is None or not np.isfinite(values[row]):
            unknown += 1
        else:
            positions.append(pos)
            truth.append(values[row])
    return TruthMatch(np.asarray(positions, dtype=np.int64), np.asarray(truth, dtype=np.float64), used, unknown)


# ---------------------------------------------------------------- metrics


def _pair(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth, dtype=np.float64).ravel(), np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length ({t.size} vs {p.size})")
    if t.size == 0:
        raise ValueError("no values to compare")
    return t, p


def mse(truth: np.ndarray, pred: np.ndarray) -> float:
    t, p = _pair(truth, pred)
    return float(np.mean((t - p) ** 2))


def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(mse(truth, pred)))


def pearson(truth: np.ndarray, pred: np.ndarray) -> float:
    """Linear correlation; NaN when either side is constant (it is undefined there)."""
    t, p = _pair(truth, pred)
    dt, dp = t - t.mean(), p - p.mean()
    denom = np.sqrt((dt**2).sum() * (dp**2).sum())
    return float((dt * dp).sum() / denom) if denom > 0 else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], v.size] - 1
    ranks = np.empty(v.size)
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def spearman(truth: np.ndarray, pred: np.ndarray) -> float:
    t, p = _pair(truth, pred)
    return pearson(average_ranks(t), average_ranks(p))


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Pairs of equal values in a sorted array (sum of t(t-1)/2 over runs)."""
    if sorted_values.size == 0:
        return 0
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1], True])
    runs = np.diff(starts)
    return int((runs * (runs - 1) // 2).sum())


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (ties are not inversions): bottom-up merge sort in numpy.

    Each level merges neighbouring sorted blocks of `width`; keys offset by the
    block pair's number keep every pair apart, so one searchsorted per level
    counts, for each right-block element, the larger elements of its left block.
    """
    v = np.unique(values, return_inverse=True)[1].astype(np.int64)
    n, span, total, width = v.size, int(v.max(initial=0)) + 1, 0, 1
    pos = np.arange(n)
    while width < n:
        pair = pos // (2 * width)
        right = (pos // width) % 2 == 1
        key = pair * span + v
        left_keys = key[~right]
        block_end = np.searchsorted(left_keys, (pair[right] + 1) * span, side="left")
        total += int((block_end - np.searchsorted(left_keys, key[right], side="right")).sum())
        v = np.sort(key) - pair * span
        width *= 2
    return total


def kendall_tau(truth: np.ndarray, pred: np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking handled), in O(n log^2 n) (Knight's method)."""
    t, p = _pair(truth, pred)
    order = np.lexsort((p, t))
    t, p = t[order], p[order]
    n0 = t.size * (t.size - 1) // 2
    ties_t = _tied_pairs(t)
    joint_starts = np.r_[True, (t[1:] != t[:-1]) | (p[1:] != p[:-1])]
    runs = np.diff(np.r_[np.flatnonzero(joint_starts), t.size])
    ties_both = int((runs * (runs - 1) // 2).sum())
    ties_p = _tied_pairs(np.sort(p))
    swaps = _inversions(p)
    denom = np.sqrt(float(n0 - ties_t) * float(n0 - ties_p))
    if denom == 0:
        return float("nan")
    return float((n0 - ties_t - ties_p + ties_both - 2 * swaps) / denom)


def top_k_overlap(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Share of the k best cells by truth that are also among the k best by prediction (higher = better).

    Ties at the k-th place are broken by input order, on both sides alike.
    """
    t, p = _pair(truth, pred)
    k = min(int(k), t.size)
    if k < 1:
        raise ValueError("k must be at least 1")
    best_t = np.argsort(-t, kind="mergesort")[:k]
    best_p = np.argsort(-p, kind="mergesort")[:k]
    return len(np.intersect1d(best_t, best_p)) / k


def prediction_metrics(truth: np.ndarray, pred: np.ndarray, top_k: int = 10) -> dict[str, Any]:
    """Every figure `svge predict --truth` reports, by name."""
    t, p = _pair(truth, pred)
    k = min(int(top_k), t.size)
    return {
        "cells": int(t.size),
        "mse": mse(t, p),
        "rmse": rmse(t, p),
        "pearson": pearson(t, p),
        "spearman": spearman(t, p),
        "kendall_tau": kendall_tau(t, p),
        "top_k": k,
        "top_k_overlap": top_k_overlap(t, p, k),
    }


def uncertainty_metrics(truth: np.ndarray, pred: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """How well a head's standard deviations describe its errors.

    mean_std: the average predicted std; within_1std / within_2std: shares of cells whose
    error lies inside one / two stds (about 0.68 / 0.95 when calibrated and Gaussian);
    error_std_spearman: rank correlation of |error| with std (above 0: the head knows where it errs).
    """
    t, p = _pair(truth, pred)
    s = np.asarray(std, dtype=np.float64).ravel()
    err = np.abs(t - p)
    return {
        "mean_std": float(s.mean()),
        "within_1std": float(np.mean(err <= s)),
        "within_2std": float(np.mean(err <= 2 * s)),
        "error_std_spearman": spearman(err, s) if t.size > 1 else float("nan"),
    }
