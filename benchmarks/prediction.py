"""Performance prediction on real benchmark data (paper Sec. IV-C): SVGe's predictors beside one-hot baselines.

    python benchmarks/prediction.py [--shared-data DIR] [--seeds 3] [--tasks nb201-100,...]
                                    [--methods svge,frozen,forest,boosting[,joint]]
                                    [--checkpoint SPACE=FILE ...] [--epochs E] [--device auto|cpu|cuda]
                                    [--threads K] [--json]
    python benchmarks/prediction.py --protocol suite-zero --proxy-cache SPACE=FILE ... [--seeds 10]
                                    [--spaces nb201,nb101] [--proxies NAMES] [--runs FEATURES:REGRESSOR,...]

The second form is NAS-Bench-Suite-Zero's protocol on cells with cached proxies: see benchmarks/suite_zero.py.

Tasks (every figure is mean +/- std over seeds; each seed draws its own labels):
  nb201-100, nb201-1000  NB201 target cifar10_valid_val, 100 / 1,000 labels, evaluated on all other cells
  nb101-800              the 1,000 cells of nb101/nb101_1k.jsonl, val_acc_108, 800 labels / 200 test cells
                         (the paper's MSE 0.0028 with 1,000 labels is on another, larger test set)
  enas                   ws_acc, 1,000 labels from D-VAE's train split (all 17,118 with --full),
                         tested on its 1,902 test cells

Methods:
  svge      `svge finetune`'s defaults: an exact GP (Matern 5/2 ARD) on the pretrained VAE's latent means
            beside the one-hot cell, on rank-gauss transformed labels
  frozen    the same GP on the frozen latent means alone (what the VAE's latent space carries by itself)
  joint     `svge finetune --head mlp`: the paper's joint training of the VAE and the 56-28-14-7-1
            regressor (rank-gauss labels; --epochs E joint epochs, default 100 with patience 20):
            minutes per seed on a CPU, so not in the default --methods
  gp-onehot the same GP and label map on the one-hot cell alone, no VAE (what the latent space adds)
  forest    scikit-learn random forest (500 trees) on one-hot ops + flattened adjacency, raw labels
  boosting  scikit-learn gradient boosting (500 trees of depth 3, rate 0.05, subsample 0.8), same features

Every method sees the same drawn labels (finetune's draw: the SVGe methods keep a tenth for
validation as the command does, the baselines fit on all of them).  MSE is on accuracy scaled to
[0, 1] (NB201's percentages divided by 100).  Seconds are wall time per seed (fit + predicting the
test cells), single-threaded.  scikit-learn comes with the `bench` extra: pip install -e .[bench].
A VAE checkpoint per space comes from --checkpoint SPACE=FILE, else svge_cli/pretrained/<space>.h5.
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

from svge_cli import artifacts
from svge_cli.arch import one_hot_cells  # noqa: E402
from svge_cli.artifacts import Dataset  # noqa: E402
from svge_cli.model import checkpoints  # noqa: E402
from svge_cli.model.gphead import GPHead  # noqa: E402
from svge_cli.model.predictor import kendall_tau, mse, pearson, spearman  # noqa: E402
from svge_cli.model.scaling import fit_scale  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR  # noqa: E402
from svge_cli.training.finetune import finetune  # noqa: E402
from svge_cli.training.labels import FinetuneConfig, draw_labels  # noqa: E402

METHODS = ("svge", "frozen", "joint", "gp-onehot", "forest", "boosting")
DEFAULT_METHODS = ("svge", "frozen", "forest", "boosting")
METRICS = ("mse", "spearman", "kendall", "pearson")


@dataclass(frozen=True)
class Task:
    space: str
    file: str
    target: str
    labels: int | None  # None: every cell of the pool
    pool: str  # "all" or "train" (the dataset's own split)
    unit: float  # divide labels by this to get accuracy in [0, 1]
    quick_labels: int | None = None  # the draw without --full


TASKS = {
    "nb201-100": Task("nb201", NB201_FILE, "cifar10_valid_val", 100, "all", 100.0),
    "nb201-1000": Task("nb201", NB201_FILE, "cifar10_valid_val", 1000, "all", 100.0),
    "nb101-800": Task("nb101", NB101_FILE, "val_acc_108", 800, "all", 1.0),
    "enas": Task("enas", ENAS_FILE, "ws_acc", None, "train", 1.0, quick_labels=1000),
}


def scores(truth: np.ndarray, pred: np.ndarray, unit: float) -> dict[str, float]:
    t, p = truth / unit, pred / unit
    return {"mse": mse(t, p), "spearman": spearman(t, p), "kendall": kendall_tau(t, p), "pearson": pearson(t, p)}


def baseline(name: str, seed: int):
    try:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    except ImportError:
        raise SystemExit(
            "error: the forest and boosting baselines need scikit-learn: pip install -e .[bench]"
        ) from None
    if name == "forest":
        return RandomForestRegressor(n_estimators=500, n_jobs=1, random_state=seed)
    return GradientBoostingRegressor(
        n_estimators=500, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
    )


def run_task(
    task: Task,
    ds: Dataset,
    base: artifacts.Checkpoint,
    seeds: int,
    methods: list[str],
    epochs: int | None,
    full: bool,
    device: torch.device,
) -> dict[str, Any]:
    """Every method on `seeds` label draws of one task."""
    values = ds.labels[task.target]
    pool = ds.split_indices(artifacts.SPLIT_TRAIN) if task.pool == "train" else None
    split_test = ds.split_indices(artifacts.SPLIT_TEST) if task.pool == "train" else None
    n = task.labels if full or task.quick_labels is None else task.quick_labels
    n = len(pool) if n is None else n
    model0 = checkpoints.model_from_checkpoint(base, device)
    onehot = one_hot_cells(ds.ops, ds.adj, model0.cfg.vocab_size, model0.cfg.max_nodes)
    per_seed: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    configs = {
        "svge": FinetuneConfig(),
        "frozen": FinetuneConfig(onehot=False),
        "joint": FinetuneConfig(head="mlp", **({"epochs": epochs} if epochs else {})),
    }
    for seed in range(seeds):
        draw = draw_labels(values, n, replace(FinetuneConfig(), seed=seed), pool)
        test = draw.unseen if split_test is None else split_test  # a split's own test cells, else all unseen
        truth = values[test]
        for method in methods:
            began = time.perf_counter()
            if method in configs:
                cfg = replace(configs[method], seed=seed)
                model = checkpoints.model_from_checkpoint(base, device)
                predictor, history = finetune(model, ds, values, task.target, draw, cfg)
                pred = predictor.from_arrays(ds.ops[test], ds.adj[test], ds.n_nodes[test])
                extra = {"epochs": len(history)}
            elif method == "gp-onehot":
                scale = fit_scale(values[draw.train], "rank-gauss")
                y = scale.normalize(values)
                torch.manual_seed(seed)
                head = GPHead(0, len(draw.drawn), onehot.shape[1]).fit(onehot[draw.train], y[draw.train])
                head.condition(onehot[draw.drawn], y[draw.drawn])
                with torch.no_grad():
                    pred = scale.restore(head(torch.as_tensor(onehot[test])).numpy())
                extra = {}
            else:
                reg = baseline(method, seed).fit(onehot[draw.drawn], values[draw.drawn])
                pred = reg.predict(onehot[test])
                extra = {}
            seconds[method].append(time.perf_counter() - began)
            per_seed[method].append(scores(truth, pred, task.unit) | extra)
            print(
                f"  {task.space} seed {seed} {method}: kendall {per_seed[method][-1]['kendall']:.3f} "
                f"({seconds[method][-1]:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return {
        "space": task.space,
        "target": task.target,
        "labels": n,
        "fit": len(draw.train),
        "validation": len(draw.validation),
        "test": len(test),
        "methods": {
            m: {
                "mean": {k: float(np.mean([r[k] for r in rows])) for k in METRICS},
                "std": {k: float(np.std([r[k] for r in rows])) for k in METRICS},
                "per_seed": rows,
                "seconds_per_seed": round(float(np.mean(seconds[m])), 1),
            }
            for m, rows in per_seed.items()
        },
    }


def checkpoint_paths(pairs: list[str]) -> dict[str, Path]:
    paths = {space: PRETRAINED_DIR / f"{space}.h5" for space in {t.space for t in TASKS.values()}}
    for pair in pairs:
        space, sep, path = pair.partition("=")
        if not sep or space not in paths:
            raise SystemExit(f"error: --checkpoint wants SPACE=FILE with SPACE one of {', '.join(sorted(paths))}")
        paths[space] = Path(path)
    return paths


def show(name: str, result: dict[str, Any]) -> None:
    print(
        f"{name}: {result['target']}, {result['labels']:,} labels ({result['fit']:,} fitted, "
        f"{result['validation']:,} validation), {result['test']:,} test cells"
    )
    for method, r in result["methods"].items():
        cells = "  ".join(f"{k} {r['mean'][k]:.4g} +/- {r['std'][k]:.2g}" for k in METRICS)
        print(f"    {method:<8} {cells}  ({r['seconds_per_seed']:.0f} s per seed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument("--seeds", type=int, default=3, help="label draws per task (default 3)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="SPACE=FILE",
        help="VAE checkpoint of a space (default svge_cli/pretrained/<space>.h5)",
    )
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"comma-separated subset of {', '.join(METHODS)}"
    )
    parser.add_argument("--full", action="store_true", help="every ENAS train label (17,118) instead of 1,000")
    parser.add_argument("--epochs", type=int, default=None, help="joint epochs (default finetune's 100)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared small machine more threads are slower)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--protocol", choices=["svge", "suite-zero"], default="svge")
    parser.add_argument("--proxy-cache", action="append", default=[], metavar="SPACE=FILE", help="suite-zero")
    parser.add_argument("--spaces", default="nb201,nb101", help="suite-zero: spaces to run")
    parser.add_argument("--proxies", default=None, help="suite-zero: proxies read [default: svge's set per space]")
    parser.add_argument("--runs", default=None, help="suite-zero: FEATURES:REGRESSOR pairs [default: the table's]")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="suite-zero: seed of the first label draw (default 0, the reported draws; others for choosing variants)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.protocol == "suite-zero":
        return suite_zero_main(args)
    names = [t for t in args.tasks.split(",") if t]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [t for t in names if t not in TASKS] + [m for m in methods if m not in METHODS]
    if unknown or args.seeds < 1:
        print(
            f"error: unknown tasks or methods {unknown} (known: {', '.join(TASKS)}; {', '.join(METHODS)}) "
            "or --seeds < 1",
            file=sys.stderr,
        )
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
        base = store.load_checkpoint(paths[task.space], task.space)
        results[name] = run_task(task, data[task.file], base, args.seeds, methods, args.epochs, args.full, device) | {
            "checkpoint": str(paths[task.space])
        }
        show(name, results[name])
    if args.json:
        print(
            json.dumps(
                {
                    "tasks": results,
                    "skipped": skipped,
                    "seeds": args.seeds,
                    "full": args.full,
                    "methods": methods,
                    "device": str(device),
                    "threads": args.threads,
                }
            )
        )
    return 0


def suite_zero_main(args: argparse.Namespace) -> int:
    from suite_zero import DEFAULT_RUNS, FEATURE_SETS, REGRESSORS, run_space

    from svge_cli.model.features import FeatureSpec
    from svge_cli.networks.proxytable import parse_proxies, settings_for
    from svge_cli.spaces import get_space
    from svge_cli.storage.proxycache import ProxyCache

    caches = dict(pair.partition("=")[::2] for pair in args.proxy_cache)
    runs = DEFAULT_RUNS if args.runs is None else [tuple(r.split(":")) for r in args.runs.split(",")]
    bad = [r for r in runs if len(r) != 2 or r[0] not in FEATURE_SETS or r[1] not in REGRESSORS]
    if bad:
        raise SystemExit(f"error: unknown runs {bad} (features {FEATURE_SETS}, regressors {REGRESSORS})")
    files = {"nb201": (NB201_FILE, "cifar10_valid_val"), "nb101": (NB101_FILE, "val_acc_108")}
    seeds = args.seeds if "--seeds" in sys.argv else 10
    report: dict[str, Any] = {"protocol": "suite-zero", "seeds": seeds, "first_seed": args.first_seed, "spaces": {}}
    for space in [s for s in args.spaces.split(",") if s]:
        if space not in caches:
            raise SystemExit(f"error: no --proxy-cache {space}=FILE")
        sp = get_space(space)
        spec = FeatureSpec(parse_proxies(args.proxies, sp), settings_for(sp))
        file, target = files[space]
        ds = import_file(space, args.shared_data / file)
        base = store.load_checkpoint(checkpoint_paths(args.checkpoint)[space], space)
        result = run_space(
            ds,
            base,
            target,
            ProxyCache(Path(caches[space]), space),
            spec,
            range(args.first_seed, args.first_seed + seeds),
            runs,
        )
        report["spaces"][space] = result
        print(f"{space}: {result['cells']:,} cells with cached proxies, {result['test']} test cells, {seeds} seeds")
        for key, cell in result["results"].items():
            print(
                f"    {key:<40} spearman {cell['spearman']['mean']:.3f} +/- {cell['spearman']['std']:.3f}"
                f"  kendall {cell['kendall']['mean']:.3f} +/- {cell['kendall']['std']:.3f}"
            )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
