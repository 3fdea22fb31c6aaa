"""Performance prediction on real benchmark data (paper Sec. IV-C), with two baselines beside SVGe.

    python benchmarks/prediction.py [--shared-data DIR] [--seeds 3] [--full] [--tasks nb201-100,...]
                                    [--checkpoint SPACE=FILE ...] [--epochs E] [--device auto|cpu|cuda]
                                    [--threads K] [--json]

Tasks (every figure is mean +/- std over seeds; each seed draws its own labels):
  nb201-100, nb201-1000  NB201 target cifar10_valid_val, 100 / 1,000 labels, evaluated on all other cells
  nb101-800              the 1,000 cells of nb101/nb101_1k.jsonl, val_acc_108, 800 labels / 200 test cells
                         (the paper's MSE 0.0028 with 1,000 labels is on another, larger test set)
  enas                   ws_acc, labels from D-VAE's train split (17,118 with --full), tested on its 1,902

Methods:
  svge     `svge finetune`'s joint training of the VAE and the 56-28-14-7-1 regressor (a tenth of
           the labels held back for early stopping, as the command does)
  frozen   the same regressor trained alone on the pretrained VAE's latent means (what joint training buys)
  onehot   the same regressor widths on one-hot ops + flattened adjacency (what the VAE buys)

MSE is on accuracy scaled to [0, 1] (NB201's percentages divided by 100).

The default run is a smoke-sized schedule for a 2-core CPU: few joint epochs (20 for nb201-100,
3 elsewhere) and 1,000 ENAS labels; it took about 10 minutes on a busy 2-core machine (load ~9).
Those few epochs under-train the joint model: read its figures as a check that everything runs.
--epochs E sets the joint epochs of every task (30 on an H200: nb201-1000's three seeds took 117 s).
--full uses finetune's defaults (100 epochs, patience 20) and all 17,118 ENAS train labels: hours
for ENAS even on a GPU.  A VAE checkpoint per space comes from --checkpoint SPACE=FILE, else
svge_cli/pretrained/<space>.h5; a task whose checkpoint is missing is skipped and says so.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import ENAS_FILE, NB101_FILE, NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.model import codec  # noqa: E402
from svge_cli.storage import checkpoints, store  # noqa: E402
from svge_cli.model.predictor import LabelScale, kendall_tau, mse, pearson, spearman  # noqa: E402
from svge_cli.model.regressor import Regressor  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.store import Dataset  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR  # noqa: E402
from svge_cli.training.finetune import FinetuneConfig, LabelDraw, draw_labels, finetune  # noqa: E402

METHODS = ("svge", "frozen", "onehot")
METRICS = ("mse", "spearman", "kendall", "pearson")
HEAD_EPOCHS, HEAD_PATIENCE, HEAD_BATCH, HEAD_LR = 300, 30, 32, 1e-3


@dataclass(frozen=True)
class Task:
    space: str
    file: str
    target: str
    labels: int | None  # None: every cell of the pool
    pool: str  # "all" or "train" (the dataset's own split)
    unit: float  # divide labels by this to get accuracy in [0, 1]
    quick_epochs: int
    quick_labels: int | None = None  # a smaller draw for the default run


TASKS = {
    "nb201-100": Task("nb201", NB201_FILE, "cifar10_valid_val", 100, "all", 100.0, 20),
    "nb201-1000": Task("nb201", NB201_FILE, "cifar10_valid_val", 1000, "all", 100.0, 3),
    "nb101-800": Task("nb101", NB101_FILE, "val_acc_108", 800, "all", 1.0, 3),
    "enas": Task("enas", ENAS_FILE, "ws_acc", None, "train", 1.0, 3, quick_labels=1000),
}


def scores(truth: np.ndarray, pred: np.ndarray, unit: float) -> dict[str, float]:
    t, p = truth / unit, pred / unit
    return {"mse": mse(t, p), "spearman": spearman(t, p), "kendall": kendall_tau(t, p), "pearson": pearson(t, p)}


def one_hot_features(ds: Dataset, vocab: int) -> np.ndarray:
    """Node types one-hot (padding all zero) beside the strictly upper-triangular adjacency entries."""
    ops = ds.ops.astype(np.int64)
    onehot = (ops[:, :, None] == np.arange(vocab)).reshape(len(ds), -1)
    rows, cols = np.triu_indices(ds.adj.shape[1], 1)
    return np.concatenate([onehot, ds.adj[:, rows, cols]], axis=1).astype(np.float32)


def fit_head(x: np.ndarray, values: np.ndarray, draw: LabelDraw, test: np.ndarray, hidden: tuple[int, ...],
             seed: int, device: torch.device) -> np.ndarray:
    """The regressor alone on fixed features, early-stopped on the validation rows; predictions for `test`."""
    scale = LabelScale.fit(values[draw.train])
    y = torch.as_tensor(scale.normalize(values), dtype=torch.float32, device=device)
    feats = torch.as_tensor(x, dtype=torch.float32, device=device)
    torch.manual_seed(seed)
    head = Regressor(x.shape[1], hidden).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=HEAD_LR)
    rng = np.random.default_rng(seed)
    val = torch.as_tensor(draw.validation, device=device)
    best, best_state, since = np.inf, None, 0
    for _ in range(HEAD_EPOCHS):
        head.train()
        order = rng.permutation(draw.train)
        for s in range(0, len(order), HEAD_BATCH):
            idx = torch.as_tensor(order[s:s + HEAD_BATCH], device=device)
            loss = torch.mean((head(feats[idx]) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            val_mse = torch.mean((head(feats[val]) - y[val]) ** 2).item()
        if val_mse < best:
            best, since = val_mse, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            since += 1
            if since >= HEAD_PATIENCE:
                break
    head.load_state_dict(best_state)
    with torch.no_grad():
        return scale.restore(head(feats[torch.as_tensor(test, device=device)]).cpu().numpy())


def run_task(task: Task, ds: Dataset, base: store.Checkpoint, seeds: int, cfg: FinetuneConfig, full: bool,
             device: torch.device) -> dict[str, Any]:
    """Every method on `seeds` label draws of one task."""
    values = ds.labels[task.target]
    pool = ds.split_indices(store.SPLIT_TRAIN) if task.pool == "train" else None
    split_test = ds.split_indices(store.SPLIT_TEST) if task.pool == "train" else None
    n = task.labels if full or task.quick_labels is None else task.quick_labels
    n = len(pool) if n is None else n
    frozen_model = checkpoints.model_from_checkpoint(base, device)
    latents, _ = codec.encode_arrays(frozen_model, ds.ops, ds.adj, ds.n_nodes)
    features = {"frozen": latents, "onehot": one_hot_features(ds, get_space(task.space).vocab_size)}
    hidden = Regressor(frozen_model.cfg.latent).hidden
    per_seed: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    for seed in range(seeds):
        seed_cfg = replace(cfg, seed=seed)
        draw = draw_labels(values, n, seed_cfg, pool)
        test = draw.unseen if split_test is None else split_test  # a split's own test cells, else all unseen
        truth = values[test]
        began = time.perf_counter()
        model = checkpoints.model_from_checkpoint(base, device)
        predictor, history = finetune(model, ds, values, task.target, draw, seed_cfg)
        pred = predictor.from_arrays(ds.ops[test], ds.adj[test], ds.n_nodes[test])
        seconds["svge"] += time.perf_counter() - began
        per_seed["svge"].append(scores(truth, pred, task.unit) | {"epochs": len(history)})
        for name, x in features.items():
            began = time.perf_counter()
            pred = fit_head(x, values, draw, test, hidden, seed, device)
            seconds[name] += time.perf_counter() - began
            per_seed[name].append(scores(truth, pred, task.unit))
    return {"space": task.space, "target": task.target, "labels": n, "fit": len(draw.train),
            "validation": len(draw.validation), "test": len(test),
            "methods": {m: {"mean": {k: float(np.mean([r[k] for r in rows])) for k in METRICS},
                            "std": {k: float(np.std([r[k] for r in rows])) for k in METRICS},
                            "per_seed": rows, "seconds": round(seconds[m], 1)}
                        for m, rows in per_seed.items()}}


def checkpoint_paths(pairs: list[str]) -> dict[str, Path]:
    paths = {space: PRETRAINED_DIR / f"{space}.h5" for space in {t.space for t in TASKS.values()}}
    for pair in pairs:
        space, sep, path = pair.partition("=")
        if not sep or space not in paths:
            raise SystemExit(f"error: --checkpoint wants SPACE=FILE with SPACE one of {', '.join(sorted(paths))}")
        paths[space] = Path(path)
    return paths


def show(name: str, result: dict[str, Any]) -> None:
    print(f"{name}: {result['target']}, {result['labels']:,} labels ({result['fit']:,} fitted, "
          f"{result['validation']:,} validation), {result['test']:,} test cells")
    for method, r in result["methods"].items():
        cells = "  ".join(f"{k} {r['mean'][k]:.4g} +/- {r['std'][k]:.2g}" for k in METRICS)
        print(f"    {method:<7} {cells}  ({r['seconds']:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument("--seeds", type=int, default=3, help="label draws per task (default 3)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="SPACE=FILE",
                        help="VAE checkpoint of a space (default svge_cli/pretrained/<space>.h5)")
    parser.add_argument("--full", action="store_true", help="finetune's full schedule and every ENAS train label")
    parser.add_argument("--epochs", type=int, default=None, help="joint epochs for every task (overrides both)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared small machine more threads are slower)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in names if t not in TASKS]
    if unknown or args.seeds < 1:
        print(f"error: unknown tasks {unknown} (known: {', '.join(TASKS)}) or --seeds < 1", file=sys.stderr)
        return 2
    if not args.shared_data.is_dir():
        print(f"error: {args.shared_data}: no such folder (pass --shared-data)", file=sys.stderr)
        return 2
    paths = checkpoint_paths(args.checkpoint)
    device = checkpoints.pick_device(args.device)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    data: dict[str, Dataset] = {}
    for name in names:
        task = TASKS[name]
        if not paths[task.space].is_file():
            skipped[name] = f"no {task.space} checkpoint at {paths[task.space]} (pass --checkpoint {task.space}=FILE)"
            print(f"{name}: skipped, {skipped[name]}")
            continue
        if task.file not in data:
            data[task.file] = import_file(task.space, args.shared_data / task.file)
        epochs = args.epochs or (FinetuneConfig().epochs if args.full else task.quick_epochs)
        cfg = FinetuneConfig(epochs=epochs)
        base = store.load_checkpoint(paths[task.space], task.space)
        results[name] = run_task(task, data[task.file], base, args.seeds, cfg, args.full, device) | {
            "checkpoint": str(paths[task.space]), "epochs": epochs}
        show(name, results[name])
    if args.json:
        print(json.dumps({"tasks": results, "skipped": skipped, "seeds": args.seeds, "full": args.full,
                          "device": str(device), "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
