"""Search strategies against queries on real benchmark tables: pool BO, random search, evolution.

    python benchmarks/search.py [--shared-data DIR] [--tasks nb201,nb101] [--seeds 20]
                                [--budgets 50,100,150,200,300,500] [--strategies NAME,...]
                                [--workers K] [--plot FILE.png] [--json]

Tasks:
  nb201  the whole space (15,625 cells, the enumeration as the pool) scored by the table's
         `cifar10_valid_val`; reported per strategy and budget: mean +/- std over seeds of the best
         validation accuracy found and of that cell's `cifar10_test`, how many seeds found the
         space's best validation cell (91.607), and the strategy's wall time per seed.
  nb101  the 1,000 labelled cells of nb101_1k.jsonl as the pool, scored by `val_acc_108`
         (x 100), budgets capped at 300; same report.

Strategies (`--strategies`, comma list of names from STRATEGIES below, or `all`): pool BO variants
on the shipped checkpoint's latent means (z-scored over the pool) or on one-hot cells, random
search, regularised evolution (population 10, tournament 3).  The default run is every default
strategy at 20 seeds; `--seeds 3 --budgets 50,100` is a smoke run of a minute or two.
Each seed runs in its own process (`--workers K`, one torch thread each).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import NB101_FILE, NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.search.evolution import EvolutionPool  # noqa: E402
from svge_cli.search.pool import onehot_features, pool_latents, zscore  # noqa: E402
from svge_cli.search.pool_bo import PoolBO  # noqa: E402
from svge_cli.search.random_search import RandomPool  # noqa: E402
from svge_cli.search.strategies import search  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR, Workspace  # noqa: E402

#: name -> (kind, options).  kind: pool (PoolBO), random, evolution.  `features`: latent | onehot | both
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "evolution": ("evolution", {"population": 10, "sample": 3}),
    "gp-topk16": ("pool", {"surrogate": "gp", "init": 16, "batch_rule": "topk"}),
    "gp-kb16": ("pool", {"surrogate": "gp", "init": 16, "batch_rule": "kb"}),
    "gp-kb10": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb"}),
    "gp-topk10": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "topk"}),
    "gp-kb10-rank": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb", "target": "rank"}),  # = DEFAULT_POOL
    "gp-kb10-log": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb", "target": "log"}),
    "gpard-kb10": ("pool", {"surrogate": "gp-ard", "init": 10, "batch_rule": "kb"}),
    "gp-ucb10": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb", "acquisition": "ucb"}),
    "gp-ts10": ("pool", {"surrogate": "gp", "init": 10, "acquisition": "ts"}),
    "dngo-topk16": ("pool", {"surrogate": "dngo", "init": 16, "batch_rule": "topk"}),
    "dngo-kb10": ("pool", {"surrogate": "dngo", "init": 10, "batch_rule": "kb"}),
    "gp-kb10-rank-onehot": (
        "pool",
        {"surrogate": "gp", "init": 10, "batch_rule": "kb", "target": "rank", "features": "onehot"},
    ),
    "gp-kb10-onehot": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb", "features": "onehot"}),
    "gp-kb10-both": ("pool", {"surrogate": "gp", "init": 10, "batch_rule": "kb", "features": "both"}),
}
DEFAULT_STRATEGIES = "random,evolution,gp-kb10-rank,gp-kb10-rank-onehot,gp-kb10,gp-topk16"
BATCH = {"random": 5, "evolution": 1}  # evolution is sequential (a batch of 1 is its best form)
DEFAULT_BATCH = 5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shared_data_option(p)
    p.add_argument("--tasks", default="nb201,nb101")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budgets", default="50,100,150,200,300,500")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES)
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="pool BO batch size")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--checkpoint", action="append", default=[], metavar="SPACE=FILE")
    p.add_argument("--plot", type=Path, default=None, help="anytime plot PNG (per task: NAME-TASK.png)")
    p.add_argument("--out", type=Path, default=None, help="write every run's best-so-far curve here (JSON)")
    p.add_argument(
        "--from-runs",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="summarise and plot runs saved with --out (several files are merged) instead of running",
    )
    p.add_argument("--json", action="store_true")
    return p.parse_args()


# ---------------------------------------------------------------- tasks


def checkpoint_for(space: str, given: list[str]) -> Path:
    for item in given:
        if item.startswith(space + "="):
            return Path(item.partition("=")[2])
    return PRETRAINED_DIR / f"{space}.h5"


def load_task(task: str, shared: Path, ckpt: Path, ws: Workspace) -> dict[str, Any]:
    """The pool (dataset rows), its features, the objective column and the test column."""
    space = get_space(task)
    t0 = time.perf_counter()
    if task == "nb201":
        table = import_file("nb201", shared / NB201_FILE)
        ds = space.enumerate_dataset()
        row = {h: i for i, h in enumerate(table.hashes)}
        order = np.asarray([row[h] for h in ds.hashes])
        val = table.labels["cifar10_valid_val"][order]
        test = table.labels["cifar10_test"][order]
    else:
        ds = import_file("nb101", shared / NB101_FILE)
        val = 100 * ds.labels["val_acc_108"]
        test = 100 * ds.labels.get("test_acc_108", np.full(len(ds), np.nan))  # the 1k file has no test column
    load_s = time.perf_counter() - t0
    ck = store.load_checkpoint(ckpt, task)
    lat, cached = pool_latents(ws, ck, ds)
    t1 = time.perf_counter()
    latent = zscore(lat.mu)
    onehot = onehot_features(ds, space)
    return {
        "space": space,
        "ds": ds,
        "val": val,
        "test": test,
        "latent": latent,
        "onehot": zscore(onehot),
        "load_s": load_s,
        "encode_s": t1 - t0 - load_s,
        "cached": cached,
        "fingerprint": ck.fingerprint(),
    }


def make_strategy(name: str, task: dict[str, Any], seed: int):
    kind, opts = STRATEGIES[name]
    opts = dict(opts)
    ds = task["ds"]
    if kind == "random":
        return RandomPool(len(ds))
    if kind == "evolution":
        return EvolutionPool(task["space"], ds, ds.hashes, onehot=task["onehot"], **opts)
    feats = opts.pop("features", "latent")
    x = {
        "latent": task["latent"],
        "onehot": task["onehot"],
        "both": np.concatenate([task["latent"], task["onehot"]], 1) if feats == "both" else None,
    }[feats]
    return PoolBO(x, seed=seed, **opts)


_TASK: dict[str, Any] = {}


def _init_worker(task: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    _TASK.clear()
    _TASK.update(task)


def run_one(name: str, seed: int, budget: int, batch: int) -> dict[str, Any]:
    task = _TASK
    torch.manual_seed(seed)
    strategy = make_strategy(name, task, seed)
    val = task["val"]

    def objective(cells: list[int]) -> list[float]:
        return [float(val[i]) for i in cells]

    start = time.perf_counter()
    rounds: list[float] = []
    hist = search(
        strategy,
        objective,
        budget,
        BATCH.get(STRATEGIES[name][0], batch),
        seed,
        on_round=lambda r: rounds.append(r.seconds),
    )
    seconds = time.perf_counter() - start
    return {
        "strategy": name,
        "seed": seed,
        "cells": [int(c) for c in hist.candidates],
        "best_so_far": hist.best_so_far().tolist(),
        "seconds": seconds,
        "max_round_s": max(rounds) if rounds else 0.0,
    }


# ---------------------------------------------------------------- summaries


def summarise(runs: list[dict[str, Any]], task: dict[str, Any], budgets: list[int]) -> dict[str, Any]:
    val, test = task["val"], task["test"]
    best_cell = int(np.nanargmax(val))
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["strategy"] for r in runs):
        mine = [r for r in runs if r["strategy"] == name]
        per_budget = {}
        for b in budgets:
            if any(len(r["cells"]) < b for r in mine):
                continue  # this strategy was not run that far
            bests, tests, found = [], [], 0
            for r in mine:
                cells = np.asarray(r["cells"][:b])
                i = cells[int(np.nanargmax(val[cells]))]
                bests.append(float(val[i]))
                tests.append(float(test[i]))
                found += int(best_cell in set(cells.tolist()))
            per_budget[b] = {
                "val_mean": float(np.mean(bests)),
                "val_std": float(np.std(bests)),
                "test_mean": float(np.mean(tests)),
                "test_std": float(np.std(tests)),
                "found_best": found,
                "seeds": len(mine),
            }
        out[name] = {
            "budgets": per_budget,
            "seconds_per_seed": float(np.mean([r["seconds"] for r in mine])),
            "max_round_s": float(max(r["max_round_s"] for r in mine)),
        }
    return out


def print_table(task_name: str, summary: dict[str, Any], budgets: list[int], optimum: float) -> None:
    print(f"\n## {task_name}  (best validation cell {optimum:.3f}; val mean +/- std [test mean] found-best/seeds)")
    head = "| strategy | " + " | ".join(str(b) for b in budgets) + " | s/seed | max round s |"
    print(head)
    print("|" + " --- |" * (len(budgets) + 3))
    for name, s in summary.items():
        print_row(name, s, budgets)


def print_row(name: str, s: dict[str, Any], budgets: list[int], file: Any = None) -> None:
    cells = []
    for b in budgets:
        x = s["budgets"].get(b)
        if x is None:
            cells.append("-")
            continue
        test = "" if math.isnan(x["test_mean"]) else f" [{x['test_mean']:.2f}]"
        cells.append(f"{x['val_mean']:.2f} +/- {x['val_std']:.2f}{test} {x['found_best']}/{x['seeds']}")
    print(
        f"| {name} | " + " | ".join(cells) + f" | {s['seconds_per_seed']:.1f} | {s['max_round_s']:.2f} |",
        file=file or sys.stdout,
        flush=True,
    )


def plot(runs: list[dict[str, Any]], path: Path, title: str, optimum: float, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["strategy"] for r in runs):
        mine = [r["best_so_far"][:budget] for r in runs if r["strategy"] == name]
        curves = np.asarray([c[: min(map(len, mine))] for c in mine])
        x = np.arange(1, curves.shape[1] + 1)
        m, s = curves.mean(0), curves.std(0)
        ax.plot(x, m, label=name)
        ax.fill_between(x, m - s, m + s, alpha=0.15)
    ax.axhline(optimum, color="k", lw=0.8, ls="--", label=f"best cell {optimum:.2f}")
    lo = min(np.mean([r["best_so_far"][min(29, len(r["best_so_far"]) - 1)] for r in runs]), optimum - 1)
    ax.set_ylim(lo, optimum + 0.1)
    ax.set_xlabel("queries")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    budgets = [int(b) for b in args.budgets.split(",")]
    names = list(STRATEGIES) if args.strategies == "all" else args.strategies.split(",")
    for n in names:
        if n not in STRATEGIES:
            sys.exit(f"unknown strategy {n!r} (known: {', '.join(STRATEGIES)})")
    ws = Workspace(Path(os.environ.get("SVGE_WORKDIR", tempfile.mkdtemp(prefix="svge-search-"))))
    report: dict[str, Any] = {}
    all_runs: dict[str, list] = {}
    for task_name in args.tasks.split(","):
        task = load_task(task_name, args.shared_data, checkpoint_for(task_name, args.checkpoint), ws)
        tb = [b for b in budgets if b <= (300 if task_name == "nb101" else len(task["ds"]))]
        start = time.perf_counter()
        runs = []
        optimum = float(np.nanmax(task["val"]))
        if args.from_runs:
            saved = [r for f in args.from_runs for r in json.loads(f.read_text()).get(task_name, [])]
            names = list(dict.fromkeys(r["strategy"] for r in saved))
            longest = {n: min(len(r["cells"]) for r in saved if r["strategy"] == n) for n in names}
            tb = [b for b in tb if b <= max(longest.values())]
        pool = (
            ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(task,))
            if args.workers > 1 and not args.from_runs
            else None
        )
        if pool is None:
            _init_worker(task)
        for n in names:  # one strategy at a time, its row printed as soon as its seeds are done
            if args.from_runs:
                runs += [r for r in saved if r["strategy"] == n]
                continue
            jobs = [(n, s, max(tb), args.batch) for s in range(args.seeds)]
            mine = list(pool.map(run_one, *zip(*jobs))) if pool else [run_one(*j) for j in jobs]
            runs += mine
            print_row(n, summarise(mine, task, tb)[n], tb, file=sys.stderr)
            if args.out is not None:
                args.out.write_text(json.dumps({**all_runs, task_name: runs}))
        if pool is not None:
            pool.shutdown()
        summary = summarise(runs, task, tb)  # budgets beyond a strategy's runs are left out of its row
        print(
            f"{task_name}: pool {len(task['ds'])} cells, encoding {task['encode_s']:.1f} s "
            f"({'cached' if task['cached'] else 'encoded'}), all runs {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        print_table(task_name, summary, tb, optimum)
        report[task_name] = {
            "pool": len(task["ds"]),
            "optimum": optimum,
            "encode_s": task["encode_s"],
            "checkpoint": task["fingerprint"],
            "strategies": summary,
        }
        all_runs[task_name] = runs
        if args.plot is not None:
            path = args.plot.with_name(f"{args.plot.stem}-{task_name}{args.plot.suffix}")
            plot(
                runs, path, f"{task_name}: best so far vs queries ({args.seeds} seeds, mean +/- std)", optimum, max(tb)
            )
            print(f"plot: {path}", file=sys.stderr)
    if args.out is not None:
        args.out.write_text(json.dumps(all_runs))
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
