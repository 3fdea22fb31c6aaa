"""Scores from a fine-tuned checkpoint, and how well they agree with the truth (paper Sec. IV-C).

A fine-tuned checkpoint is a VAE checkpoint plus: the regressor's tensors in its
state arrays under ``regressor.``, the regressor's widths in ``config["regressor"]``,
the label scaling and target column in ``meta``, and the rows (and hashes) of the
cells it was fine-tuned on in ``arrays``, so predictions can be judged on cells
it has never seen.  The metrics live in `svge_cli.model.metrics` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from svge_cli.arch import Arch, one_hot_cells, pad_batch, unpad
from svge_cli.artifacts import Checkpoint, Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, checkpoints, codec, load_state_arrays, state_arrays
from svge_cli.model.features import FeatureSpec, ProxySource
from svge_cli.model.gphead import GPHead
from svge_cli.model.metrics import (  # noqa: F401  (re-exported: the metrics' long-standing home)
    average_ranks,
    kendall_tau,
    mse,
    pearson,
    prediction_metrics,
    rmse,
    spearman,
    top_k_overlap,
    uncertainty_metrics,
)
from svge_cli.model.regressor import STATE_PREFIX, Regressor, RegressorEnsemble, head_from_config
from svge_cli.model.scaling import LabelScale, RankGaussScale
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import datasets, store
from svge_cli.storage.workspace import Workspace

USED_HASHES = "used_hashes"  # arrays key: hashes of every cell the regressor was fitted or validated on


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
    """A fitted predictor: the encoder's posterior mean (beside the cell's proxies and one-hot cell for a GP
    head that reads them), then the head (a regressor, an ensemble of them, or a GP), then the label scale.

    A cell larger than the one-hot block allows is scored from its latent mean and proxies alone
    (`GPHead`'s reduced kernel); `note` hears once that this happened.
    """

    model: SVGe
    head: Regressor | RegressorEnsemble | GPHead
    scale: LabelScale
    target: str
    features: FeatureSpec = field(default_factory=FeatureSpec)
    proxies: ProxySource | None = None
    note: Callable[[str], None] | None = None
    _told: bool = False

    @property
    def has_uncertainty(self) -> bool:
        return isinstance(self.head, GPHead) or (isinstance(self.head, RegressorEnsemble) and len(self.head.heads) > 1)

    @property
    def reads_cells(self) -> bool:
        """Whether the head needs the one-hot cell beside its latent mean."""
        return isinstance(self.head, GPHead) and self.head.onehot_dim > 0

    @property
    def needs_cells(self) -> bool:
        """Whether scoring needs the cells themselves (one-hot or proxies), not their latent means alone."""
        return self.reads_cells or bool(self.features.proxies)

    def describe(self, larger: bool = False) -> str:
        """The features this predictor reads (for cells larger than its one-hot block, with `larger`)."""
        parts = ["latent means"]
        if self.features.proxies:
            parts.append(f"proxies ({self.features.describe()})")
        if self.reads_cells and not larger:
            parts.append("one-hot cells")
        return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)

    def _proxy_columns(self, ops: np.ndarray, adj: np.ndarray) -> np.ndarray:
        if self.proxies is None:
            raise ValueError("a predictor that reads proxies needs a ProxySource")
        return self.proxies.columns(unpad(ops, adj, (np.asarray(ops) >= 0).sum(1)))

    def _inputs(self, mu: np.ndarray, ops: np.ndarray | None, adj: np.ndarray | None) -> torch.Tensor:
        dev = codec.model_device(self.model)
        if not self.needs_cells:
            dtype = torch.float64 if isinstance(self.head, GPHead) else torch.float32
            return torch.as_tensor(np.asarray(mu), dtype=dtype, device=dev)
        blocks = [np.asarray(mu, dtype=np.float64)]
        if self.features.proxies:
            blocks.append(self._proxy_columns(ops, adj))
        width = self.model.cfg.max_nodes
        if self.reads_cells and not (ops.shape[1] > width and (ops[:, width:] >= 0).any()):
            blocks.append(one_hot_cells(ops[:, :width], adj[:, :width, :width], self.model.cfg.vocab_size, width))
        return torch.as_tensor(np.concatenate(blocks, axis=1), device=dev)

    def _groups(self, ops: np.ndarray) -> list[np.ndarray]:
        """Rows that fit the one-hot block, and rows of larger cells (scored without it); non-empty ones."""
        width = self.model.cfg.max_nodes
        larger = (ops[:, width:] >= 0).any(1) if self.reads_cells and ops.shape[1] > width else np.zeros(len(ops), bool)
        if larger.any() and self.note is not None and not self._told:
            self.note(
                f"{int(larger.sum()):,} cells have more than the {width} nodes the one-hot block of this predictor "
                f"covers: they are scored from {self.describe(larger=True)}"
            )
            self._told = True
        return [g for g in (np.flatnonzero(~larger), np.flatnonzero(larger)) if len(g)]

    @torch.inference_mode()
    def _predict(
        self, mu: np.ndarray, ops: np.ndarray | None = None, adj: np.ndarray | None = None, spread: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.head.eval()
        want_sd = spread and self.has_uncertainty
        if not len(mu):
            return np.zeros(0), (np.zeros(0) if want_sd else None)
        if self.needs_cells and (ops is None or adj is None):  # latent points only: their greedy decodes are the cells
            ops, adj, _ = pad_batch(
                codec.decode_once(self.model, np.asarray(mu, dtype=np.float32), True, None, None),
                self.model.cfg.max_nodes,
            )
        if not self.needs_cells:
            return self._head_scores(self._inputs(mu, None, None), want_sd)
        mean, sd = np.zeros(len(mu)), (np.zeros(len(mu)) if want_sd else None)
        for rows in self._groups(ops):
            mean[rows], part = self._head_scores(self._inputs(np.asarray(mu)[rows], ops[rows], adj[rows]), want_sd)
            if sd is not None:
                sd[rows] = part
        return mean, sd

    def _head_scores(self, x: torch.Tensor, want_sd: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (label units) of head inputs, and their spread when asked for."""
        mean = self.head(x).cpu().numpy().astype(np.float64)
        sd = None
        if want_sd:
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
        """Scores and (for a GP or an ensemble) their uncertainty, from one encoding pass.

        Args:
            ops: node types, (B, N) padded with -1.
            adj: adjacency matrices, (B, N, N).
            n_nodes: real node count of each cell, (B,).

        Returns:
            Scores in the label's units, (B,), and one standard deviation per cell, or None for a head without one.
        """
        self.model.eval()
        mu, _ = codec.encode_arrays(self.model, ops, adj, n_nodes)
        return self._predict(mu, ops, adj, spread=True)

    def from_arrays(self, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray) -> np.ndarray:
        """Scores of padded cells, the form datasets keep them in.

        Args:
            ops: node types, (B, N) padded with -1.
            adj: adjacency matrices, (B, N, N).
            n_nodes: real node count of each cell, (B,).

        Returns:
            Scores in the label's own units, (B,) float64.
        """
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


def load_predictor(ck: Checkpoint, device: torch.device | str = "cpu", ui: Ui | None = None) -> Predictor:
    """Rebuild the fine-tuned model a checkpoint holds; SvgeError when it holds a plain VAE.

    With `ui`, proxies come from (and go to) its workspace's cache, with a progress bar, and the
    predictor's notes (larger cells scored without one-hot features) go to its stderr.

    Args:
        ck: a fine-tuned checkpoint (one whose config has a regressor).
        device: where the VAE and the head are put.
        ui: the command's interface, for the proxy cache, progress and notes; None for no cache and no notes.

    Returns:
        The predictor, VAE and head in eval mode.

    Raises:
        SvgeError: when `ck` holds a plain VAE, or its regressor part is incomplete.
    """
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
        features = FeatureSpec.from_dict(ck.config.get("features"))
    except (KeyError, TypeError, ValueError) as e:
        raise SvgeError(f"the fine-tuned checkpoint is incomplete or damaged ({e})") from None
    source = ProxySource(get_space(ck.space), features, ui) if features.proxies else None
    note = ui.note if ui is not None else None
    return Predictor(model, head.to(device).eval(), scale, target, features, source, note)


def latent_scores(ck: Checkpoint, mu: np.ndarray) -> np.ndarray | None:
    """Predicted scores of latent points when `ck` is fine-tuned, else None (nothing to colour by)."""
    return load_predictor(ck).from_latents(mu) if is_finetuned(ck) else None


def used_hashes(ck: Checkpoint) -> set[str]:
    """Hashes of the cells a fine-tuned checkpoint was fitted or validated on."""
    raw = ck.arrays.get(USED_HASHES, np.zeros(0, dtype="S1"))
    return {h.decode() if isinstance(h, bytes) else str(h) for h in raw.tolist()}


def labelled_dataset(ws: Workspace, space: SearchSpace, path: str | None) -> tuple[Dataset, str]:
    """An explicit dataset file, else the workspace's import for the space; and a name for messages.

    Args:
        ws: the workspace whose imported dataset is the fallback.
        space: the search space the dataset must belong to.
        path: an explicit dataset file (--dataset), or None for the workspace's import.

    Returns:
        The dataset and its file path as a string, for messages.

    Raises:
        SvgeError: when no path is given and the workspace has no import for the space.
    """
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
    """The values of a label column; SvgeError naming the available ones when it is missing.

    Args:
        ds: the labelled dataset.
        column: name of the label column wanted.
        source: names the dataset in the error message (usually its file).

    Returns:
        The column as float64, one value per row of `ds`, NaN where unknown.
    """
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
    """Look input cells up in a dataset by hash, leaving out those in `exclude` and those without truth.

    Args:
        hashes: the input cells' hashes, in input order.
        ds: the dataset to look them up in; the first row of a repeated hash wins.
        values: the label column of `ds` (as `label_column` gives it), aligned with its rows.
        exclude: hashes of the cells the regressor was fitted or validated on.

    Returns:
        The matched input positions and their true values, with counts of the excluded and unknown cells.
    """
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
