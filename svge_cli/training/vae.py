"""`svge train-vae`: pick data and schedule, run the training loop, keep checkpoints safe.

Each fresh run writes into its own folder (<workdir>/<space>/checkpoints/run-<time>/),
so an earlier run is never overwritten; `--resume` continues the newest run.
last.h5 is rewritten atomically after every epoch.  There is deliberately no
"best on the test split" checkpoint: choosing among epochs by test accuracy
would tune on the evaluation split.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svge_cli import artifacts
from svge_cli.artifacts import Checkpoint, Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.evaluation.abilities import training_latent_stats
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import datasets, store
from svge_cli.storage.workspace import Workspace
from svge_cli.train_config import TrainConfig
from svge_cli.training.distributed import Group, check_world, launch_device, may_restart, rank_device, restart_count
from svge_cli.training.launcher import joined, launch_command
from svge_cli.training.loop import fit, make_optimizer

EMBEDDED = "embedded"


EVAL_CELLS = 2000  # test cells for the per-epoch greedy reconstruction check


@dataclass(frozen=True)
class TrainRequest:
    space: str
    dataset: str | None = None
    model_kind: str = "svge"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    limit: int | None = None
    eval_every: int | None = None
    grad_clip: float | None = None
    precision: str | None = None
    warmup_steps: int | None = None
    paper: bool = False
    resume: bool = False
    init_from: str | None = None
    out_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    nproc: int = 1  # local processes (the elastic launcher); under torchrun the environment decides
    max_restarts: int = 0


def dataset_digest(ds: Dataset) -> str:
    """Identity of a dataset's rows, so a checkpoint's split indices are only used on the same rows."""
    return hashlib.sha256("\n".join(ds.hashes.tolist()).encode()).hexdigest()[:16]


def _schedule(req: TrainRequest, sp: SearchSpace, base: TrainConfig | None = None) -> TrainConfig:
    """The schedule of `base` (default: the space's, or the paper's), with the options given and the run's seed."""
    base = base or (sp.paper_schedule if req.paper else sp.default_schedule)
    chosen = {
        k: v
        for k, v in (
            ("epochs", req.epochs),
            ("batch_size", req.batch_size),
            ("lr", req.lr),
            ("eval_every", req.eval_every),
            ("grad_clip", req.grad_clip),
            ("precision", req.precision),
            ("warmup_steps", req.warmup_steps),
            ("seed", req.seed),
        )
        if v is not None
    }
    return replace(base, **chosen)


def _rows(ds: Dataset, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices, restricted to a seeded subset of `limit` rows when asked."""
    rows = np.arange(len(ds))
    if limit is not None and limit < len(ds):
        rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=limit, replace=False))
    split = ds.split[rows]
    train, test = rows[split == artifacts.SPLIT_TRAIN], rows[split == artifacts.SPLIT_TEST]
    if len(train) == 0 or len(test) == 0:
        raise SvgeError(f"need cells in both the train and test split, got {len(train)} / {len(test)}")
    return train, test


def load_recorded_dataset(ws: Workspace, sp: SearchSpace, ck: Checkpoint, override: str | None) -> Dataset:
    """The dataset a checkpoint was trained on (or `override`), checked against its digest.

    Args:
        ws: the workspace that holds imported datasets and the cached enumeration.
        sp: the checkpoint's search space.
        ck: the checkpoint whose recorded dataset and digest are used.
        override: a dataset file to use instead of the recorded one; None takes the recorded one.

    Returns:
        The dataset, with the same rows as in training when the checkpoint records their digest.
    """
    source = override or ck.meta.get("dataset", EMBEDDED)
    ds = datasets.embedded_default(sp, ws) if source == EMBEDDED else datasets.training_dataset(sp, ws, source)
    want = ck.meta.get("dataset_digest")
    if want and dataset_digest(ds) != want:
        raise SvgeError(
            f"the dataset {source!r} is not the one this checkpoint was trained on; pass the right one with --dataset"
        )
    return ds


def held_out_split(
    ws: Workspace, sp: SearchSpace, ck: Checkpoint, override: str | None
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(dataset, train rows, test rows) exactly as the checkpoint's training run used them.

    Args:
        ws: the workspace that holds imported datasets and the cached enumeration.
        sp: the checkpoint's search space.
        ck: the checkpoint whose dataset and recorded train/test rows are used.
        override: a dataset file to use instead of the recorded one; None takes the recorded one.

    Returns:
        The dataset and its train and test row indices (int64), as the run split them.
    """
    ds = load_recorded_dataset(ws, sp, ck, override)
    if "train_rows" not in ck.arrays or "test_rows" not in ck.arrays:
        raise SvgeError("this checkpoint does not record its train/test split")
    return ds, ck.arrays["train_rows"].astype(np.int64), ck.arrays["test_rows"].astype(np.int64)


def _run_dir(ws: Workspace, req: TrainRequest) -> Path:
    if req.out_dir:
        out = Path(req.out_dir)
        if (out / "last.h5").exists() and not req.resume:
            raise SvgeError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        return out
    if req.resume:
        runs = sorted(ws.checkpoint_dir(req.space).glob("run-*/last.h5"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise SvgeError(f"no {req.space} run in {ws.root} to resume")
        return runs[-1].parent  # the newest run, even when a fine-tuned checkpoint is the latest
    return ws.checkpoint_dir(req.space) / time.strftime("run-%Y%m%d-%H%M%S")


def _optimizer_bytes(opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    return buf.getvalue()


@dataclass
class _Plan:
    """What a run trains on and how, decided before any weights exist or any file is written."""

    out: Path
    seed: int
    sched: TrainConfig
    ds: Dataset
    train_idx: np.ndarray
    test_idx: np.ndarray
    previous: Checkpoint | None  # the checkpoint being resumed
    why: str = ""  # which cells and why, for the user: a --limit above the dataset's size is not silent


def _plan(ws: Workspace, sp: SearchSpace, req: TrainRequest) -> _Plan:
    out = _run_dir(ws, req)
    if req.resume:
        previous = store.load_checkpoint(out / "last.h5", sp.name, with_optimizer=True)
        # the run's own seed, not --seed's default: the batches continue as if never interrupted
        seed = int(previous.config.get("seed", req.seed))
        ds, train_idx, test_idx = held_out_split(ws, sp, previous, None)
        sched = _schedule(replace(req, seed=seed), sp, TrainConfig(**previous.config["schedule"]))
        if previous.epoch >= sched.epochs:
            raise SvgeError(f"the run in {out} already finished {previous.epoch} epochs; raise --epochs to continue it")
        return _Plan(out, seed, sched, ds, train_idx, test_idx, previous, "the split of the run being resumed")
    ds = datasets.training_dataset(sp, ws, req.dataset)
    limit = (
        req.limit
        if req.limit is not None
        else (None if req.dataset or _imported(ws, sp, req) else sp.default_train_limit)
    )
    train_idx, test_idx = _rows(ds, limit, req.seed)
    why = _rows_why(len(ds), limit, asked=req.limit is not None)
    return _Plan(out, req.seed, _schedule(req, sp), ds, train_idx, test_idx, None, why)


def _rows_why(n: int, limit: int | None, asked: bool) -> str:
    """Where the train/test counts come from, so a limit that changed nothing or a default subset is visible."""
    if limit is None:
        return f"all {n:,} cells of the dataset, by its train/test split"
    if limit >= n:
        return f"--limit {limit:,} is more than the dataset's {n:,} cells: all of them, by its train/test split"
    source = f"--limit {limit:,}" if asked else f"the space's default subset of {limit:,}"
    return f"{source}: a seeded {limit:,} of the dataset's {n:,} cells, by its train/test split"


def _imported(ws: Workspace, sp: SearchSpace, req: TrainRequest) -> bool:
    """Whether the workspace's import is the dataset (as datasets.training_dataset chooses)."""
    return req.dataset is None and ws.dataset_path(sp.name).exists()


def _fresh_model(ws: Workspace, sp: SearchSpace, req: TrainRequest, plan: _Plan, device: torch.device) -> SVGe:
    config = ModelConfig(
        vocab_size=sp.vocab_size, max_nodes=max(sp.max_nodes, int(plan.ds.n_nodes.max())), decoder=req.model_kind
    )
    model = SVGe(config).to(device)
    if req.init_from:
        _load_initial_weights(model, sp, req.init_from)
    return model


def _fresh_meta(ws: Workspace, sp: SearchSpace, req: TrainRequest, ds: Dataset) -> dict[str, Any]:
    dataset_path = req.dataset or (ws.dataset_path(sp.name) if _imported(ws, sp, req) else None)
    # absolute: --resume and evaluate find it again from any folder
    dataset_src = str(Path(dataset_path).resolve()) if dataset_path else EMBEDDED
    meta = {"dataset": dataset_src, "dataset_digest": dataset_digest(ds), "source": ds.source}
    if req.init_from:
        meta["init_from"] = str(Path(req.init_from).resolve())
    return meta


def train_vae(ui: Ui, req: TrainRequest) -> Path | None:
    """Train (or resume) a VAE for `req.space`; returns the checkpoint's path (None on ranks other than 0).

    `req.nproc` > 1 starts that many local processes; a process started by
    torchrun (WORLD_SIZE in the environment) joins its process group.
    """
    if req.nproc > 1:
        return _launch_local(ui, req)
    device = rank_device(checkpoints.pick_device(req.device))
    if restart_count() > 0 and req.out_dir and (Path(req.out_dir) / "last.h5").exists():
        req = replace(req, resume=True, init_from=None)  # restarted by the launcher: from the last checkpoint
    elif may_restart() and not (req.out_dir or req.resume):
        raise SvgeError("with --max-restarts, pass --out DIR so that restarted processes find the run again")
    with joined(ui, device) as (rank_ui, group):
        return _train(rank_ui, req, device, group)


def _train(ui: Ui, req: TrainRequest, device: torch.device, group: Group) -> Path | None:
    ws, sp = ui.workspace, get_space(req.space)
    plan = _plan(ws, sp, req)
    sched, out, previous = plan.sched, plan.out, plan.previous
    check_world(group.world, sched.batch_size, len(plan.train_idx))
    torch.manual_seed(plan.seed)
    if previous is not None:
        model = checkpoints.model_from_checkpoint(previous, device).train()
        meta, history, start = previous.meta, previous.history, previous.epoch
    else:
        model = _fresh_model(ws, sp, req, plan, device)
        meta, history, start = _fresh_meta(ws, sp, req, plan.ds), [], 0
    optimizer = make_optimizer(model, sched.lr)
    if previous is not None and previous.optimizer:
        optimizer.load_state_dict(torch.load(io.BytesIO(previous.optimizer), weights_only=True))
    fixed = {
        "config": {"schedule": asdict(sched), "seed": plan.seed},
        "arrays": {"train_rows": plan.train_idx.astype(np.int32), "test_rows": plan.test_idx.astype(np.int32)},
        "meta": meta,
    }
    where = f"device {device}" if group.world == 1 else f"{group.world} processes on {device.type}"
    ui.note(
        f"training {sp.name} on {len(plan.train_idx):,} cells ({len(plan.test_idx):,} held out; {plan.why}), "
        f"{sched.epochs} epochs, batch {sched.batch_size}, lr {sched.lr:g}, {where}; run folder {out}"
    )

    def on_epoch(epoch: int, hist: list[dict[str, Any]]) -> None:
        ck = checkpoints.snapshot(
            sp.name, model, epoch=epoch, history=hist, optimizer=_optimizer_bytes(optimizer), **_copy(fixed)
        )
        store.save_checkpoint(out / "last.h5", ck)
        ws.remember_checkpoint(sp.name, out / "last.h5")
        ui.note(_epoch_line(hist, sched.epochs))

    n_batches = int(np.ceil(len(plan.train_idx) / sched.batch_size)) * (sched.epochs - start)
    with ui.progress(f"train-vae {sp.name}", total=n_batches) as bar:
        fit(
            model,
            optimizer,
            plan.ds.ops,
            plan.ds.adj,
            plan.ds.n_nodes,
            plan.train_idx,
            plan.test_idx[:EVAL_CELLS],
            sched,
            start_epoch=start,
            history=history,
            on_step=(lambda _e, _s, _n, loss: bar.advance(1, status=f"loss {loss:.3f}")) if group.leader else None,
            on_epoch=on_epoch if group.leader else None,
            group=group,
        )
    if not group.leader:
        return None
    _attach_latent_stats(model.eval(), plan.ds, plan.train_idx, out / "last.h5")
    return out / "last.h5"


def _launch_local(ui: Ui, req: TrainRequest) -> Path:
    """Check the request against the world size here, then train in `req.nproc` local processes.

    Every bad request fails before a process starts or a folder is made; the
    processes all get the one run folder chosen here.
    """
    ws, sp = ui.workspace, get_space(req.space)
    device = launch_device(req.device, req.nproc)
    plan = _plan(ws, sp, req)
    check_world(req.nproc, plan.sched.batch_size, len(plan.train_idx))
    each = replace(req, nproc=1, device=device, out_dir=str(plan.out), resume=plan.previous is not None)
    last = plan.out / "last.h5"
    try:
        launch_command(ui, train_vae, each, req.nproc, req.max_restarts)
    except KeyboardInterrupt:
        ui.note(_kept(last))
        raise
    except SvgeError as e:
        raise SvgeError(f"{e}; {_kept(last)}") from None
    return last


def _kept(last: Path) -> str:
    if last.exists():
        return f"the last complete epoch is in {last} (--resume continues it)"
    return "no epoch was complete, nothing was kept"


def _load_initial_weights(model: SVGe, sp: SearchSpace, path: str) -> None:
    """Start a fresh run from another checkpoint's weights (fp16 exports included).

    Only the weights travel: the new run has its own schedule, optimizer state and
    split, so a fresh machine can continue from a committed checkpoint.
    """
    ck = store.load_checkpoint(path, sp.name)
    source = checkpoints.model_from_checkpoint(ck)
    if source.cfg.to_dict() != model.cfg.to_dict():
        raise SvgeError(
            f"{path} holds a model of another shape ({source.cfg.to_dict()}) "
            f"than this run builds ({model.cfg.to_dict()})"
        )
    model.load_state_dict(source.state_dict())


def _copy(fixed: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) for k, v in fixed.items()}


def _epoch_line(history: list[dict[str, Any]], epochs: int) -> str:
    """The last epoch's loss (and test reconstruction), with the run's training time so far."""
    h = history[-1]
    parts = [f"epoch {h['epoch']}/{epochs}", f"loss {h['loss']:.4f}"]
    if h.get("test_recon_greedy") is not None:
        parts.append(f"test reconstruction (greedy) {100 * h['test_recon_greedy']:.2f}%")
    minutes, seconds = divmod(round(sum(e.get("seconds", 0.0) for e in history)), 60)
    parts.append(f"[{minutes}m {seconds:02d}s]")
    return "  ".join(parts)


def _attach_latent_stats(model: SVGe, ds: Dataset, train_idx: np.ndarray, path: Path) -> None:
    """Store the training latents' mean/std in the final checkpoint (prior scaling, BO bounds)."""
    ck = store.load_checkpoint(path, with_optimizer=True)
    ck.arrays["latent_mean"], ck.arrays["latent_std"] = training_latent_stats(model, ds, train_idx)
    store.save_checkpoint(path, ck)
