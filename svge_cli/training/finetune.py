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
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from svge_cli.arch import one_hot_cells
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.evaluation.abilities import training_latent_stats
from svge_cli.model import SVGe, codec
from svge_cli.model.features import FeatureSpec, ProxySource, transform
from svge_cli.model.gphead import GPHead
from svge_cli.model.predictor import (
    USED_HASHES,
    Predictor,
    is_finetuned,
    kendall_tau,
    label_column,
    labelled_dataset,
    predictor_state,
)
from svge_cli.model.regressor import Regressor, RegressorEnsemble, make_head
from svge_cli.model.scaling import LABEL_TRANSFORMS, LabelScale, fit_scale
from svge_cli.networks.proxytable import settings_for
from svge_cli.spaces import get_space
from svge_cli.storage import checkpoints, store
from svge_cli.storage.store import Checkpoint, Dataset
from svge_cli.training.config import TrainConfig
from svge_cli.training.loop import batch_rows, epoch_order, open_epoch
from svge_cli.training.vae import dataset_digest

MIN_LABELS = 10
POOLS = ("all", "train")
HEADS = ("gp", "mlp")

History = list[dict[str, Any]]
StepCallback = Callable[[int, float], None]  # epoch (1-based), batch loss


@dataclass(frozen=True)
class FinetuneConfig:
    """Optimisation settings of the joint training (see the module docstring for the defaults)."""

    head: str = "gp"  # "gp": exact GP on the frozen VAE's latent means (+ one-hot cells); "mlp": joint training
    onehot: bool = True  # the GP head also reads the one-hot cell (ops + adjacency) beside the latent mean
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    regression_share: float = 0.9
    validation_share: float = 0.1
    patience: int = 20
    seed: int = 0
    hidden: tuple[int, ...] | None = None  # regressor widths; None = halving from the latent size
    ranking_weight: float = 0.0  # weight of the pairwise logistic ranking loss beside the MSE
    label_transform: str = "rank-gauss"  # "rank-gauss": labels through their empirical CDF onto a normal
    heads: int = 1  # regressors on the shared encoder; more than one gives a spread as uncertainty
    proxies: tuple[str, ...] = ()  # zero-cost proxies the GP head reads beside the latent mean (gp only)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or not self.lr > 0:
            raise ValueError("epochs, batch_size and patience >= 1 and lr > 0 are required")
        if not 0 <= self.regression_share <= 1:
            raise ValueError("regression_share must lie in [0, 1]")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}")
        if self.label_transform not in LABEL_TRANSFORMS:
            raise ValueError(f"label_transform must be one of {', '.join(LABEL_TRANSFORMS)}")
        if self.heads < 1:
            raise ValueError("heads must be >= 1")
        if not self.ranking_weight >= 0:
            raise ValueError("ranking_weight must be >= 0")
        if not 0 < self.validation_share < 1:
            raise ValueError("validation_share must lie strictly between 0 and 1")
        if self.proxies and self.head != "gp":
            raise ValueError("proxies are features of the GP head: use head 'gp', or no proxies")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LabelDraw:
    """Rows of the labelled dataset: fitted on, validated on, and never seen."""

    train: np.ndarray
    validation: np.ndarray
    unseen: np.ndarray  # every other row with a known label: the evaluation cells
    skipped_nan: int = 0  # rows of the pool passed over because their label is NaN

    @property
    def drawn(self) -> np.ndarray:
        return np.sort(np.concatenate([self.train, self.validation]))


def minimum_labels(batch_size: int) -> int:
    return max(MIN_LABELS, batch_size)


def draw_labels(values: np.ndarray, n: int, cfg: FinetuneConfig, pool: np.ndarray | None = None) -> LabelDraw:
    """Draw `n` rows with a known label from `pool` (default: all rows), seeded by cfg.seed."""
    need = minimum_labels(cfg.batch_size)
    if n < need:
        raise SvgeError(
            f"--labels {n} is too few: fine-tuning needs at least {need} labelled cells "
            f"(at least {MIN_LABELS}, and one batch of {cfg.batch_size}; lower --batch-size for fewer)"
        )
    pool = np.arange(len(values)) if pool is None else np.asarray(pool, dtype=np.int64)
    known = pool[np.isfinite(values[pool])]
    if n > len(known):
        raise SvgeError(
            f"--labels {n} asks for more cells than have a label: {len(known):,} of the "
            f"{len(pool):,} cells to draw from have one"
        )
    drawn = np.random.default_rng(cfg.seed).choice(known, size=n, replace=False)
    n_val = max(1, int(round(n * cfg.validation_share)))
    unseen = np.setdiff1d(np.flatnonzero(np.isfinite(values)), drawn)
    return LabelDraw(np.sort(drawn[n_val:]), np.sort(drawn[:n_val]), unseen, int(len(pool) - len(known)))


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


def _validation_mse(predictor: Predictor, ds: Dataset, rows: np.ndarray, y: np.ndarray) -> float:
    """MSE on standardised labels: the quantity training minimises, comparable across epochs."""
    pred = predictor.scale.normalize(predictor.from_arrays(ds.ops[rows], ds.adj[rows], ds.n_nodes[rows]))
    return float(np.mean((pred - y[rows]) ** 2))


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
    """
    scores = head.each(mu) if isinstance(head, RegressorEnsemble) else head(mu)[None]
    total = torch.mean((scores - target) ** 2)
    if ranking_weight > 0:
        total = total + ranking_weight * torch.stack([pairwise_ranking_loss(s, target) for s in scores]).mean()
    return total


def _train_epoch(
    predictor: Predictor,
    optimizer: torch.optim.Optimizer,
    ds: Dataset,
    y: np.ndarray,
    order: np.ndarray,
    cfg: FinetuneConfig,
    epoch: int,
    on_step: StepCallback | None,
) -> dict[str, float]:
    predictor.model.train()
    predictor.head.train()
    sums = {"loss": 0.0, "vae": 0.0, "mse": 0.0}
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        out = predictor.model.loss(*batch_rows(ds.ops, ds.adj, ds.n_nodes, idx))
        target = torch.as_tensor(y[idx], dtype=torch.float32, device=out["mu"].device)
        reg = head_loss(predictor.head, out["mu"], target, cfg.ranking_weight)
        loss = (1 - cfg.regression_share) * out["total"] + cfg.regression_share * reg
        value = loss.item()
        if not math.isfinite(value):  # before the update, as in VAE training: the last good weights stay
            raise FloatingPointError(f"fine-tuning loss became {value} in epoch {epoch + 1}; try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, term in (("loss", loss), ("vae", out["total"]), ("mse", reg)):
            sums[key] += term.item() * len(idx)
        if on_step is not None:
            on_step(epoch + 1, value)
    return {k: v / len(order) for k, v in sums.items()}


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
) -> tuple[Predictor, History]:
    """Fit a predictor on the drawn labels: a GP head on the frozen model (cfg.head "gp"), or train `model`
    (in place) jointly with a fresh regressor ("mlp") on draw.train, keeping the best epoch on draw.validation.

    With cfg.proxies the GP also reads those proxies, from `proxies` (a cached source) or, without one,
    computed here with the space's default settings.

    Returns the predictor (weights of the best epoch) and one history entry per
    epoch: epoch, lr, loss, vae, mse (training means, standardised labels),
    val_mse, seconds.
    """
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
    for epoch in range(cfg.epochs):
        began = time.perf_counter()
        entry = open_epoch(schedule, epoch, history, optimizer)
        entry.update(
            _train_epoch(predictor, optimizer, ds, y, epoch_order(schedule, epoch, draw.train), cfg, epoch, on_step)
        )
        entry["val_mse"] = _validation_mse(predictor, ds, draw.validation, y)
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


def proxy_source(ds: Dataset, names: tuple[str, ...], ui: Ui | None = None) -> ProxySource:
    """The proxies `names` of `ds`'s space with its default settings; cached in `ui`'s workspace if given."""
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
    then the posterior conditioned on every drawn cell."""
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


# ---------------------------------------------------------------- the command's orchestration


@dataclass(frozen=True)
class FinetuneRequest:
    space: str
    labels: int
    target: str | None = None
    checkpoint: str | None = None
    dataset: str | None = None
    pool: str = "all"
    output: str | None = None
    device: str = "auto"
    config: FinetuneConfig = FinetuneConfig()


def _base_checkpoint(ui: Ui, space: str, path: str | None) -> tuple[Checkpoint, Path]:
    """The VAE to start from; the workspace's latest, or that one's own base when it is fine-tuned already.

    Starting again from the base keeps each fine-tuning independent of the label
    draw of an earlier one.
    """
    ck, where = checkpoints.resolve(ui.workspace, space, path, ui.note)
    if path is None and is_finetuned(ck):
        base = Path(str(ck.meta.get("base_checkpoint", "")))
        if base.is_file():
            ui.note(f"the latest {space} checkpoint is fine-tuned; starting from its VAE {base}")
            return store.load_checkpoint(base, space), base
    if is_finetuned(ck):
        ui.note(f"{where} is fine-tuned already: starting from its VAE, with a fresh regressor")
    return ck, where


def _latent_stats_rows(base: Checkpoint, ds: Dataset) -> np.ndarray:
    """The VAE's training rows when `ds` is the VAE's own dataset, else every row of `ds`."""
    if base.meta.get("dataset_digest") == dataset_digest(ds) and "train_rows" in base.arrays:
        return base.arrays["train_rows"].astype(np.int64)
    return np.arange(len(ds))


def _validation_rmse(predictor: Predictor, ds: Dataset, rows: np.ndarray, values: np.ndarray) -> float:
    """RMSE of the kept weights on the validation cells, in the label's own units."""
    pred = predictor.from_arrays(ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
    return float(np.sqrt(np.mean((pred - values[rows]) ** 2)))


def finetuned_checkpoint(
    base: Checkpoint,
    base_path: Path,
    predictor: Predictor,
    ds: Dataset,
    source: str,
    draw: LabelDraw,
    cfg: FinetuneConfig,
    history: History,
    pool: str,
) -> Checkpoint:
    """The base checkpoint's facts (so evaluate/encode/decode keep working) plus the regressor's."""
    best = min(history, key=lambda h: h["val_mse"])
    latent_mean, latent_std = training_latent_stats(predictor.model, ds, _latent_stats_rows(base, ds))
    used = np.asarray([h.encode() for h in ds.hashes[draw.drawn].tolist()])
    meta = base.meta | {
        "target": predictor.target,
        **predictor.scale.meta(),
        "labels": len(draw.drawn),
        "pool": pool,
        "labelled_dataset": source,
        "labelled_dataset_digest": dataset_digest(ds),
        "base_checkpoint": str(base_path.resolve()),
        "base_fingerprint": base.fingerprint(),
        "best_epoch": best["epoch"],
        "validation_rmse": best["val_rmse"]
        if "val_rmse" in best
        else _validation_rmse(
            predictor, ds, draw.validation, np.asarray(ds.labels[predictor.target], dtype=np.float64)
        ),
        "head": cfg.head,
    }
    arrays = (
        base.arrays
        | {
            "latent_mean": latent_mean,
            "latent_std": latent_std,
            "labelled_rows": draw.train.astype(np.int32),
            "validation_rows": draw.validation.astype(np.int32),
            "unseen_rows": draw.unseen.astype(np.int32),
            USED_HASHES: used,
        }
        | predictor.scale.arrays()
    )
    config = base.config | {
        "regressor": predictor.head.config(),
        "finetune": cfg.to_dict(),
        "features": predictor.features.to_dict(),
    }
    return Checkpoint(
        base.space, config, predictor_state(predictor), epoch=len(history), history=history, arrays=arrays, meta=meta
    )


def finetuned_path(ui: Ui, space: str, target: str, labels: int) -> Path:
    return ui.workspace.checkpoint_dir(space) / f"finetuned-{target}-{labels}.h5"


def run_finetune(ui: Ui, req: FinetuneRequest) -> Path:
    """Fine-tune for `req`, write the checkpoint atomically, remember it as the space's latest."""
    sp, cfg = get_space(req.space), req.config
    if req.pool not in POOLS:
        raise SvgeError(f"--pool must be one of {', '.join(POOLS)}, not {req.pool!r}")
    base, base_path = _base_checkpoint(ui, sp.name, req.checkpoint)
    ds, source = labelled_dataset(ui.workspace, sp, req.dataset)
    target = req.target or sp.default_target
    values = label_column(ds, target, source)
    pool = ds.split_indices(store.SPLIT_TRAIN) if req.pool == "train" else None
    draw = draw_labels(values, req.labels, cfg, pool)
    if draw.skipped_nan:
        ui.note(f"skipped {draw.skipped_nan:,} cells whose {target} is unknown (NaN)")
    model = checkpoints.model_from_checkpoint(base, checkpoints.pick_device(req.device))
    if int(ds.n_nodes.max()) > model.cfg.max_nodes:
        raise SvgeError(
            f"{source} holds cells of {int(ds.n_nodes.max())} nodes; the checkpoint was built "
            f"for at most {model.cfg.max_nodes}"
        )
    proxy_src = proxy_source(ds, cfg.proxies, ui) if cfg.proxies else None
    reads = ["latent means"] + ([f"proxies ({', '.join(cfg.proxies)})"] if cfg.proxies else [])
    reads += ["one-hot cells"] if cfg.onehot else []
    what = (
        f"a GP head on the {', '.join(reads[:-1]) + ' and ' if len(reads) > 1 else ''}{reads[-1]} of {base_path}"
        if cfg.head == "gp"
        else f"{base_path} jointly with a regressor, up to {cfg.epochs} epochs"
    )
    ui.note(
        f"fitting {what} on {len(draw.train):,} labelled {sp.name} cells ({len(draw.validation):,} "
        f"for validation, {len(draw.unseen):,} unseen), target {target}"
    )
    if proxy_src is not None:  # computed (with their own progress bar) or read from the cache before the fit
        proxy_src.raw([ds.arch(int(i)) for i in draw.drawn])
    steps = 1 if cfg.head == "gp" else math.ceil(len(draw.train) / cfg.batch_size) * cfg.epochs
    with ui.progress(f"finetune {sp.name}", total=steps) as bar:
        predictor, history = finetune(
            model,
            ds,
            values,
            target,
            draw,
            cfg,
            on_step=lambda _e, loss: bar.advance(1, status=f"loss {loss:.3f}"),
            on_epoch=lambda h: bar.advance(0, status=f"epoch {h['epoch']} val mse {h['val_mse']:.3f}"),
            proxies=proxy_src,
        )
    ck = finetuned_checkpoint(base, base_path, predictor, ds, source, draw, cfg, history, req.pool)
    out = Path(req.output) if req.output else finetuned_path(ui, sp.name, target, req.labels)
    store.save_checkpoint(out, ck)
    ui.workspace.remember_checkpoint(sp.name, out)
    if cfg.head == "gp":
        ui.note(
            f"GP head conditioned on all {len(draw.drawn):,} drawn cells; fitted on {len(draw.train):,}, it "
            f"scored the {len(draw.validation):,} validation cells at RMSE {ck.meta['validation_rmse']:.4g} "
            f"({target} units), Kendall tau {history[0]['val_kendall']:.3f}"
        )
    else:
        ui.note(
            f"best epoch {ck.meta['best_epoch']} of {len(history)}: validation RMSE "
            f"{ck.meta['validation_rmse']:.4g} ({target} units)"
        )
    return out
