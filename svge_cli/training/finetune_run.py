"""The orchestration of `svge finetune`: the base checkpoint, the labels, the fit, and the checkpoint written."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from svge_cli import artifacts
from svge_cli.artifacts import Checkpoint, Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.evaluation.abilities import training_latent_stats
from svge_cli.model import ModelConfig, checkpoints
from svge_cli.model.predictor import (
    USED_HASHES,
    Predictor,
    is_finetuned,
    label_column,
    labelled_dataset,
    predictor_state,
)
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.training.distributed import Group, launch_device, rank_device
from svge_cli.training.finetune import History, check_world_for, finetune
from svge_cli.training.gpfit import proxy_source
from svge_cli.training.labels import POOLS, FinetuneConfig, LabelDraw, draw_labels
from svge_cli.training.launcher import joined, launch_command
from svge_cli.training.vae import dataset_digest


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
    nproc: int = 1  # local processes (the elastic launcher); under torchrun the environment decides


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
    """The base checkpoint's facts (so evaluate/encode/decode keep working) plus the regressor's.

    Args:
        base: the VAE checkpoint fine-tuned from; its config, arrays and meta are carried over.
        base_path: where `base` lies, recorded so that a later fine-tuning starts from the same VAE.
        predictor: the fitted model and head whose weights, label scale and features are stored.
        ds: the labelled dataset fitted on; the latent statistics and the drawn cells' hashes come from it.
        source: where `ds` came from, recorded as the labelled dataset.
        draw: the fitted, validation and unseen rows of `ds`, stored with the checkpoint.
        cfg: the fine-tuning settings, stored in the checkpoint's config.
        history: the fit's per-epoch entries; the one with the lowest val_mse is the best epoch.
        pool: which cells the labels were drawn from ("all" or "train").

    Returns:
        The fine-tuned checkpoint, ready to save.
    """
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
    """The default file of a fine-tuned checkpoint, in the space's checkpoint folder of the workspace.

    Args:
        ui: the console whose workspace holds the checkpoints.
        space: the search space's name.
        target: the label column fitted, part of the file name.
        labels: how many labelled cells were asked for, part of the file name.

    Returns:
        The path <checkpoints>/finetuned-<target>-<labels>.h5 (not created here).
    """
    return ui.workspace.checkpoint_dir(space) / f"finetuned-{target}-{labels}.h5"


@dataclass
class _Job:
    """What a fine-tuning fits on and where it writes, decided before any process starts."""

    base: Checkpoint
    base_path: Path
    ds: Dataset
    source: str
    target: str
    values: np.ndarray
    draw: LabelDraw
    out: Path


def _prepare(ui: Ui, req: FinetuneRequest) -> _Job:
    """Resolve and check the request's inputs: every bad request fails here, before a fit or a process."""
    sp, cfg = get_space(req.space), req.config
    if req.pool not in POOLS:
        raise SvgeError(f"--pool must be one of {', '.join(POOLS)}, not {req.pool!r}")
    base, base_path = _base_checkpoint(ui, sp.name, req.checkpoint)
    ds, source = labelled_dataset(ui.workspace, sp, req.dataset)
    target = req.target or sp.default_target
    values = label_column(ds, target, source)
    pool = ds.split_indices(artifacts.SPLIT_TRAIN) if req.pool == "train" else None
    draw = draw_labels(values, req.labels, cfg, pool)
    if draw.skipped_nan:
        ui.note(f"skipped {draw.skipped_nan:,} cells whose {target} is unknown (NaN)")
    max_nodes = ModelConfig.from_dict(base.config["model"]).max_nodes
    if int(ds.n_nodes.max()) > max_nodes:
        raise SvgeError(
            f"{source} holds cells of {int(ds.n_nodes.max())} nodes; the checkpoint was built for at most {max_nodes}"
        )
    out = Path(req.output) if req.output else finetuned_path(ui, sp.name, target, req.labels)
    return _Job(base, base_path, ds, source, target, values, draw, out)


def run_finetune(ui: Ui, req: FinetuneRequest) -> Path | None:
    """Fine-tune for `req`, write the checkpoint atomically, remember it as the space's latest.

    `req.nproc` > 1 trains in that many local processes; a process started by
    torchrun joins its process group.  Returns the checkpoint's path (None on
    ranks other than 0, which write nothing).
    """
    if req.nproc > 1:
        return _launch_local(ui, req)
    device = rank_device(checkpoints.pick_device(req.device))
    with joined(ui, device) as (rank_ui, group):
        return _fit_and_write(rank_ui, req, _prepare(rank_ui, req), device, group)


def _launch_local(ui: Ui, req: FinetuneRequest) -> Path:
    """Check the request against the world size here, then fine-tune in `req.nproc` local processes."""
    job = _prepare(replace(ui, quiet=True), req)  # rank 0 says it all again
    check_world_for(req.config, req.nproc, len(job.draw.train))
    device = launch_device(req.device, req.nproc)
    each = replace(req, nproc=1, device=device, checkpoint=str(job.base_path), output=str(job.out))
    launch_command(ui, run_finetune, each, req.nproc)
    return job.out


def _fit_and_write(ui: Ui, req: FinetuneRequest, job: _Job, device: torch.device, group: Group) -> Path | None:
    sp, cfg, draw = get_space(req.space), req.config, job.draw
    check_world_for(cfg, group.world, len(draw.train))
    model = checkpoints.model_from_checkpoint(job.base, device)
    proxy_src = proxy_source(job.ds, cfg.proxies, ui) if cfg.proxies else None
    ui.note(
        f"fitting {_fit_what(cfg, job.base_path, group)} on {len(draw.train):,} labelled {sp.name} cells "
        f"({len(draw.validation):,} for validation, {len(draw.unseen):,} unseen), target {job.target}"
    )
    if proxy_src is not None:  # computed (with their own progress bar) or read from the cache before the fit
        proxy_src.raw([job.ds.arch(int(i)) for i in draw.drawn])
    steps = 1 if cfg.head == "gp" else math.ceil(len(draw.train) / cfg.batch_size) * cfg.epochs
    with ui.progress(f"finetune {sp.name}", total=steps) as bar:
        predictor, history = finetune(
            model,
            job.ds,
            job.values,
            job.target,
            draw,
            cfg,
            on_step=lambda _e, loss: bar.advance(1, status=f"loss {loss:.3f}"),
            on_epoch=lambda h: bar.advance(0, status=f"epoch {h['epoch']} val mse {h['val_mse']:.3f}"),
            proxies=proxy_src,
            group=group,
        )
    if not group.leader:
        return None
    ck = finetuned_checkpoint(job.base, job.base_path, predictor, job.ds, job.source, draw, cfg, history, req.pool)
    store.save_checkpoint(job.out, ck)
    ui.workspace.remember_checkpoint(sp.name, job.out)
    ui.note(_fit_result(cfg, ck, draw, history, job.target))
    return job.out


def _fit_what(cfg: FinetuneConfig, base_path: Path, group: Group) -> str:
    """What is fitted on what, for the user: the GP head's features, or the joint training's length."""
    if cfg.head == "mlp":
        where = f" in {group.world} processes" if group.world > 1 else ""
        return f"{base_path} jointly with a regressor, up to {cfg.epochs} epochs{where}"
    reads = ["latent means"] + ([f"proxies ({', '.join(cfg.proxies)})"] if cfg.proxies else [])
    reads += ["one-hot cells"] if cfg.onehot else []
    return f"a GP head on the {', '.join(reads[:-1]) + ' and ' if len(reads) > 1 else ''}{reads[-1]} of {base_path}"


def _fit_result(cfg: FinetuneConfig, ck: Checkpoint, draw: LabelDraw, history: History, target: str) -> str:
    if cfg.head == "gp":
        return (
            f"GP head conditioned on all {len(draw.drawn):,} drawn cells; fitted on {len(draw.train):,}, it "
            f"scored the {len(draw.validation):,} validation cells at RMSE {ck.meta['validation_rmse']:.4g} "
            f"({target} units), Kendall tau {history[0]['val_kendall']:.3f}"
        )
    return (
        f"best epoch {ck.meta['best_epoch']} of {len(history)}: validation RMSE "
        f"{ck.meta['validation_rmse']:.4g} ({target} units)"
    )
