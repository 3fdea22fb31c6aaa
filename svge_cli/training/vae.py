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

from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.evaluation.abilities import training_latent_stats
from svge_cli.model import ModelConfig, SVGe
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import checkpoints, datasets, store
from svge_cli.storage.store import Checkpoint, Dataset
from svge_cli.storage.workspace import Workspace
from svge_cli.training.config import TrainConfig
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
    train, test = rows[split == store.SPLIT_TRAIN], rows[split == store.SPLIT_TEST]
    if len(train) == 0 or len(test) == 0:
        raise SvgeError(f"need cells in both the train and test split, got {len(train)} / {len(test)}")
    return train, test


def load_recorded_dataset(ws: Workspace, sp: SearchSpace, ck: Checkpoint, override: str | None) -> Dataset:
    """The dataset a checkpoint was trained on (or `override`), checked against its digest."""
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
    """(dataset, train rows, test rows) exactly as the checkpoint's training run used them."""
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


def train_vae(ui: Ui, req: TrainRequest) -> Path:
    """Train (or resume) a VAE for `req.space`; returns the path of the best checkpoint."""
    ws, sp = ui.workspace, get_space(req.space)
    out = _run_dir(ws, req)
    device = checkpoints.pick_device(req.device)
    torch.manual_seed(req.seed)
    if req.resume:
        previous = store.load_checkpoint(out / "last.h5", sp.name, with_optimizer=True)
        # the run's own seed, not --seed's default: the batches continue as if never interrupted
        req = replace(req, seed=int(previous.config.get("seed", req.seed)))
        ds, train_idx, test_idx = held_out_split(ws, sp, previous, None)
        sched = _schedule(req, sp, TrainConfig(**previous.config["schedule"]))
        model = checkpoints.model_from_checkpoint(previous, device).train()
        meta, history, start = previous.meta, previous.history, previous.epoch
    else:
        ds = datasets.training_dataset(sp, ws, req.dataset)
        imported = req.dataset is None and ws.dataset_path(sp.name).exists()  # as training_dataset chose
        limit = req.limit if req.limit is not None else (None if req.dataset or imported else sp.default_train_limit)
        train_idx, test_idx = _rows(ds, limit, req.seed)
        sched = _schedule(req, sp)
        config = ModelConfig(
            vocab_size=sp.vocab_size, max_nodes=max(sp.max_nodes, int(ds.n_nodes.max())), decoder=req.model_kind
        )
        model = SVGe(config).to(device)
        if req.init_from:
            _load_initial_weights(model, sp, req.init_from)
        dataset_path = req.dataset or (ws.dataset_path(sp.name) if imported else None)
        # absolute: --resume and evaluate find it again from any folder
        dataset_src = str(Path(dataset_path).resolve()) if dataset_path else EMBEDDED
        meta = {"dataset": dataset_src, "dataset_digest": dataset_digest(ds), "source": ds.source}
        if req.init_from:
            meta["init_from"] = str(Path(req.init_from).resolve())
        history, start = [], 0
    optimizer = make_optimizer(model, sched.lr)
    if req.resume and previous.optimizer:
        optimizer.load_state_dict(torch.load(io.BytesIO(previous.optimizer), weights_only=True))
    if start >= sched.epochs:
        raise SvgeError(f"the run in {out} already finished {start} epochs; raise --epochs to continue it")
    fixed = {
        "config": {"schedule": asdict(sched), "seed": req.seed},
        "arrays": {"train_rows": train_idx.astype(np.int32), "test_rows": test_idx.astype(np.int32)},
        "meta": meta,
    }
    ui.note(
        f"training {sp.name} on {len(train_idx):,} cells ({len(test_idx):,} held out), "
        f"{sched.epochs} epochs, batch {sched.batch_size}, lr {sched.lr:g}, device {device}; run folder {out}"
    )

    def on_epoch(epoch: int, hist: list[dict[str, Any]]) -> None:
        ck = checkpoints.snapshot(
            sp.name, model, epoch=epoch, history=hist, optimizer=_optimizer_bytes(optimizer), **_copy(fixed)
        )
        store.save_checkpoint(out / "last.h5", ck)
        ws.remember_checkpoint(sp.name, out / "last.h5")
        ui.note(_epoch_line(hist, sched.epochs))

    n_batches = int(np.ceil(len(train_idx) / sched.batch_size)) * (sched.epochs - start)
    with ui.progress(f"train-vae {sp.name}", total=n_batches) as bar:
        fit(
            model,
            optimizer,
            ds.ops,
            ds.adj,
            ds.n_nodes,
            train_idx,
            test_idx[:EVAL_CELLS],
            sched,
            start_epoch=start,
            history=history,
            on_step=lambda _e, _s, _n, loss: bar.advance(1, status=f"loss {loss:.3f}"),
            on_epoch=on_epoch,
        )
    _attach_latent_stats(model.eval(), ds, train_idx, out / "last.h5")
    return out / "last.h5"


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
