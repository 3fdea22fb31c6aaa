"""`svge finetune`: the VAE and a score regressor trained jointly on a few labelled cells (Sec. IV-C).

Defaults follow the authors' fine-tuning script and config: Adam at lr 1e-3,
100 epochs, the rate divided by 10 after 10 epochs without a better training
loss, the regressor reading the posterior mean, and
loss = (1 - p) * VAE loss + p * MSE with the regression share p = 0.9 (their
``regression_loss_proportion`` = 0.1 is the weight of the VAE term).

Two choices are ours.  Labels are standardised with the fitted cells' mean and
std, so the MSE term has the same scale whatever the label's unit (percent or
fraction).  A tenth of the drawn cells is held back as a validation split: the
epoch with the lowest validation MSE is kept, and training stops after
`patience` epochs without improvement.

Cells whose label is NaN are never drawn (they are skipped and counted), so
`--labels N` always means N cells with a known score.

The joint training runs on several processes as VAE training does (`loop`,
`distributed`): global batches split by cell, per-cell noise, sums reduced over
the ranks, so the weights do not depend on the world size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec
from svge_cli.model.features import ProxySource
from svge_cli.model.predictor import Predictor
from svge_cli.model.regressor import Regressor, RegressorEnsemble, make_head
from svge_cli.model.scaling import fit_scale
from svge_cli.train_config import TrainConfig
from svge_cli.training.distributed import Group, check_world
from svge_cli.training.gpfit import fit_gp
from svge_cli.training.labels import FinetuneConfig, LabelDraw
from svge_cli.training.loop import batch_rows, epoch_order, open_epoch, step_rows
from svge_cli.training.noise import cell_noise

History = list[dict[str, Any]]
StepCallback = Callable[[int, float], None]  # epoch (1-based), batch loss


@dataclass
class _Best:
    """The epoch with the lowest validation MSE so far, and its weights."""

    mse: float = math.inf
    epoch: int = 0
    state: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def offer(self, epoch: int, val_mse: float, predictor: Predictor) -> None:
        if val_mse < self.mse:
            self.mse, self.epoch = val_mse, epoch
            self.state = {
                name: {k: v.detach().clone() for k, v in module.state_dict().items()}
                for name, module in (("model", predictor.model), ("head", predictor.head))
            }

    def restore(self, predictor: Predictor) -> None:
        predictor.model.load_state_dict(self.state["model"])
        predictor.head.load_state_dict(self.state["head"])


def _validation_mse(predictor: Predictor, ds: Dataset, rows: np.ndarray, y: np.ndarray, group: Group) -> float:
    """MSE on standardised labels: the quantity training minimises, comparable across epochs.

    Each rank scores its share and the sums are reduced, so every rank sees the
    same value and keeps the same best epoch.
    """
    mine = group.shard(rows)
    squared = 0.0
    if len(mine):
        pred = predictor.scale.normalize(predictor.from_arrays(ds.ops[mine], ds.adj[mine], ds.n_nodes[mine]))
        squared = float(np.sum((pred - y[mine]) ** 2))
    total, count = group.sum([squared, len(mine)])
    return float(total / count)


def pairwise_ranking_loss(score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss log(1 + exp(-(s_i - s_j))) over the pairs of a batch with target_i > target_j.

    It asks only for the right order (users rank cells); zero when no pair differs.
    """
    better = target[:, None] > target[None, :]
    if not bool(better.any()):
        return score.sum() * 0.0
    diff = score[:, None] - score[None, :]
    return torch.nn.functional.softplus(-diff[better]).mean()


def head_loss(
    head: Regressor | RegressorEnsemble, mu: torch.Tensor, target: torch.Tensor, ranking_weight: float
) -> torch.Tensor:
    """MSE (plus the weighted ranking loss) of each head on its own, averaged over the heads.

    Each head of an ensemble is fitted on its own, so their spread says how much
    differently initialised heads disagree.

    Args:
        head: the regressor, or the ensemble of regressors, that scores the latent points.
        mu: the batch's posterior means, (B, latent).
        target: the batch's standardised labels, (B,).
        ranking_weight: weight of the pairwise ranking loss added to each head's MSE; 0 leaves the MSE alone.

    Returns:
        A scalar tensor: the heads' mean loss on the batch.
    """
    scores = head.each(mu) if isinstance(head, RegressorEnsemble) else head(mu)[None]
    total = torch.mean((scores - target) ** 2)
    if ranking_weight > 0:
        total = total + ranking_weight * torch.stack([pairwise_ranking_loss(s, target) for s in scores]).mean()
    return total


class JointLoss(nn.Module):
    """A batch's fine-tuning loss as the forward pass, so DistributedDataParallel averages its gradients.

    loss = (1 - p) * VAE loss + p * regression loss, every term a mean over the batch's cells.
    """

    def __init__(self, predictor: Predictor, cfg: FinetuneConfig) -> None:
        super().__init__()
        self.model, self.head, self.cfg = predictor.model, predictor.head, cfg

    def forward(
        self, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, eps: np.ndarray, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The joint loss of one batch of cells.

        Args:
            ops: the batch's node types, (B, N) padded with -1.
            adj: the batch's adjacency matrices, (B, N, N), 0/1.
            n_nodes: the real node count of each cell, (B,).
            eps: standard normal posterior noise, (B, latent), one row per cell.
            target: the cells' standardised labels, (B,), on the model's device.

        Returns:
            Scalar tensors: loss (the weighted sum that is trained), vae (the VAE's negative ELBO) and mse
            (the head loss, ranking term included).
        """
        out = self.model.loss(ops, adj, n_nodes, eps)
        reg = head_loss(self.head, out["mu"], target, self.cfg.ranking_weight)
        share = self.cfg.regression_share
        return {"loss": (1 - share) * out["total"] + share * reg, "vae": out["total"], "mse": reg}


_TERMS = ("loss", "vae", "mse")


def _train_epoch(
    net: nn.Module,
    predictor: Predictor,
    optimizer: torch.optim.Optimizer,
    ds: Dataset,
    y: np.ndarray,
    order: np.ndarray,
    cfg: FinetuneConfig,
    epoch: int,
    on_step: StepCallback | None,
    group: Group,
) -> dict[str, float]:
    """One epoch over `order` in global batches of cfg.batch_size, each rank training on its share."""
    predictor.model.train()
    predictor.head.train()
    device = codec.model_device(predictor.model)
    sums = np.zeros(len(_TERMS))
    for start in range(0, len(order), cfg.batch_size):
        batch = order[start : start + cfg.batch_size]
        mine, weight = step_rows(batch, group)
        eps = cell_noise(cfg.seed, epoch, mine, predictor.model.cfg.latent)
        target = torch.as_tensor(y[mine], dtype=torch.float32, device=device)
        out = net(*batch_rows(ds.ops, ds.adj, ds.n_nodes, mine), eps, target)
        counted = len(mine) if weight else 0
        batch_sums = group.sum([out[term].item() * counted for term in _TERMS])
        value = float(batch_sums[0]) / len(batch)
        if not math.isfinite(value):  # before the update, as in VAE training: the last good weights stay
            raise FloatingPointError(f"fine-tuning loss became {value} in epoch {epoch + 1}; try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        (out["loss"] * weight).backward()
        optimizer.step()
        sums += batch_sums
        if on_step is not None:
            on_step(epoch + 1, value)
    return dict(zip(_TERMS, (float(v) / len(order) for v in sums)))


def check_world_for(cfg: FinetuneConfig, world: int, train_cells: int) -> None:
    """What fine-tuning on `world` processes needs: the MLP head, a loss that splits by cell, an even batch.

    Args:
        cfg: the fine-tuning settings whose head, ranking weight and batch size are checked.
        world: the number of training processes; 1 accepts any settings.
        train_cells: how many drawn cells are trained on (the draw's train rows).
    """
    if world == 1:
        return
    if cfg.head == "gp":
        raise SvgeError("--head gp fits its GP in one process: --nproc (or torchrun) trains --head mlp")
    if cfg.ranking_weight > 0:
        raise SvgeError(
            "--ranking-weight compares the cells of a whole batch, which several processes split: "
            "train it in one process"
        )
    check_world(world, cfg.batch_size, train_cells)


def finetune(
    model: SVGe,
    ds: Dataset,
    values: np.ndarray,
    target: str,
    draw: LabelDraw,
    cfg: FinetuneConfig,
    on_step: StepCallback | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    proxies: ProxySource | None = None,
    group: Group | None = None,
) -> tuple[Predictor, History]:
    """Fit a predictor on the drawn labels: a GP head on the frozen model (cfg.head "gp"), or train `model`
    (in place) jointly with a fresh regressor ("mlp") on draw.train, keeping the best epoch on draw.validation.

    With cfg.proxies the GP also reads those proxies, from `proxies` (a cached source) or, without one,
    computed here with the space's default settings.

    With `group` (several processes, "mlp" only) cfg.batch_size is the global
    batch: each rank trains on its share under DistributedDataParallel, with each
    cell's posterior noise drawn from (seed, epoch, row), so the weights are those
    of one process.

    Args:
        model: the trained VAE: frozen under the GP head, trained in place under the MLP head.
        ds: the labelled dataset whose rows `draw` and `values` index.
        values: the label of every row of `ds`, (M,), in the label's own units, NaN where unknown.
        target: the name of the label column, recorded in the predictor.
        draw: the rows fitted on (train) and those that pick the best epoch or judge the GP (validation).
        cfg: the fine-tuning settings: head, schedule, seed, label transform, proxies.
        on_step: called after every batch with the 1-based epoch and the batch's loss (MLP head only).
        on_epoch: called with each epoch's history entry once the epoch is done (MLP head only).
        proxies: a cached source of the proxies cfg.proxies names; None computes them here.
        group: the processes training together; None trains in this process alone.

    Returns:
        The predictor (with the best epoch's weights) and one history entry per epoch: epoch, lr,
        loss, vae, mse (training means, standardised labels), val_mse, seconds.  The GP head gives
        one entry, with val_rmse and val_kendall besides.
    """
    group = group or Group()
    check_world_for(cfg, group.world, len(draw.train))
    scale = fit_scale(values[draw.train], cfg.label_transform)
    y = scale.normalize(values)
    if cfg.head == "gp":
        return fit_gp(model, ds, y, scale, target, draw, cfg, proxies)
    torch.manual_seed(cfg.seed)
    head = make_head(model.cfg.latent, cfg.hidden, cfg.heads).to(codec.model_device(model))
    predictor = Predictor(model, head, scale, target)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=cfg.lr)
    schedule = TrainConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, lr_schedule="plateau"
    )
    history: History = []
    best = _Best()
    net = group.wrap(JointLoss(predictor, cfg))
    for epoch in range(cfg.epochs):
        began = time.perf_counter()
        entry = open_epoch(schedule, epoch, history, optimizer)
        entry.update(
            _train_epoch(
                net, predictor, optimizer, ds, y, epoch_order(schedule, epoch, draw.train), cfg, epoch, on_step, group
            )
        )
        entry["val_mse"] = _validation_mse(predictor, ds, draw.validation, y, group)
        entry["seconds"] = time.perf_counter() - began
        history.append(entry)
        best.offer(epoch + 1, entry["val_mse"], predictor)
        if on_epoch is not None:
            on_epoch(entry)
        if epoch + 1 - best.epoch >= cfg.patience:
            break
    best.restore(predictor)
    predictor.model.eval()
    predictor.head.eval()
    return predictor, history
