"""Wall time of `svge bo`'s engine on 1, 2, 4, 8 workers, with evaluations that cost time.

    python benchmarks/parallel.py [--shared-data DIR] [--workers 1,2,4,8] [--seeds 10]
                                  [--budget 150] [--mean-cost 1.5] [--plot FILE.png] [--json]

A simulated-cost evaluator: every NB201 cell is looked up in the real table
(`cifar10_valid_val`), and its evaluation sleeps in proportion to the cell's real training
cost, with its parameter count as the proxy, scaled so that the mean cell costs
`--mean-cost` seconds.  Each run is the default pool search (the shipped checkpoint's latent
means) through the real engine: `Driver` + journal, in the driver batch by batch for one
worker (what `--workers 1` does), on a Dask cluster of N single-threaded workers
asynchronously otherwise.  The workers are threads of one process (the evaluations only
sleep; an evaluator process per cell would add the same start-up cost to every setting).

Reported per worker count, over the seeds: wall time to the budget and its speed-up over one
worker, mean best validation accuracy at 25/50/100/150 queries, how many seeds found the
NB201 optimum (91.607) and the mean wall time to it, and the driver's median time per
proposal.  Seeds run side by side (all of them up to 2 workers, then seeds / (workers / 2) at a
time) so that the drivers' proposals -- the only CPU work -- load the machine alike in every
setting.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.search.cluster import DaskExecutor, InlineExecutor  # noqa: E402
from svge_cli.search.driver import Driver, Engine, restore  # noqa: E402
from svge_cli.search.journal import START, Journal  # noqa: E402
from svge_cli.search.pool import pool_latents, zscore  # noqa: E402
from svge_cli.search.pool_bo import DEFAULT_POOL, PoolBO  # noqa: E402
from svge_cli.search.strategies import DEFAULT_BATCH  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR, Workspace  # noqa: E402

MARKS = (25, 50, 100, 150)
_TASK: dict[str, Any] = {}


def load(shared: Path, mean_cost: float) -> dict[str, Any]:
    """Pool features (latent means of every NB201 cell), validation accuracies and per-cell costs."""
    space = get_space("nb201")
    table = import_file("nb201", shared / NB201_FILE)
    ds = space.enumerate_dataset()
    row = {h: i for i, h in enumerate(table.hashes)}
    order = np.asarray([row[h] for h in ds.hashes])
    val = table.labels["cifar10_valid_val"][order]
    params = table.labels["params_mb"][order]
    with tempfile.TemporaryDirectory() as tmp:
        ck = store.load_checkpoint(PRETRAINED_DIR / "nb201.h5", "nb201")
        lat, _ = pool_latents(Workspace(Path(tmp)), ck, ds)
    return {
        "features": zscore(lat.mu),
        "val": val,
        "cost": mean_cost * params / params.mean(),
        "optimum": float(val.max()),
    }


def simulate(arg: tuple[float, float]) -> dict[str, Any]:
    """One simulated evaluation: wait the cell's cost, answer its table score."""
    score, cost = arg
    time.sleep(cost)
    return {"ok": True, "score": score, "seconds": cost}


class Simulated:
    """The pool search of `svge bo` over NB201 with the simulated evaluator (a `driver.Searchable`)."""

    def __init__(self, task: dict[str, Any], seed: int) -> None:
        self.task, self.seed = task, seed

    def make_strategy(self) -> PoolBO:
        return PoolBO(self.task["features"], **DEFAULT_POOL, seed=self.seed)

    def describe(self, c: int) -> tuple[str, str]:
        return str(c), str(c)

    def candidate_of(self, native: str) -> int:
        return int(native)

    def job(self, c: int):
        return simulate, (float(self.task["val"][c]), float(self.task["cost"][c]))


def _init(task: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    _TASK.update(task)


def run_one(workers: int, seed: int, budget: int) -> dict[str, Any]:
    """One search to the budget; best-so-far against queries and against wall time."""
    torch.manual_seed(seed)
    search = Simulated(_TASK, seed)
    arrivals: list[tuple[float, float]] = []
    began = time.perf_counter()
    if workers == 1:
        executor, engine = InlineExecutor(), Engine(budget, DEFAULT_BATCH, sync=True)
    else:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
        executor = DaskExecutor(Client(cluster), cluster)
        engine = Engine(budget, DEFAULT_BATCH, sync=False, slots=workers)
    trial = restore(search, seed, None)
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.jsonl", fresh=True) as journal:
        journal.append(START, kind="svge-search-journal", format_version=1)
        began = time.perf_counter()
        driver = Driver(
            search, engine, executor, journal, lambda t, r: arrivals.append((time.perf_counter() - began, r["score"]))
        )
        try:
            driver.run([trial])
        finally:
            executor.close()
    wall = time.perf_counter() - began
    best = np.maximum.accumulate([s for _, s in arrivals])
    return {
        "workers": workers,
        "seed": seed,
        "wall_seconds": wall,
        "times": [t for t, _ in arrivals],
        "best_so_far": best.tolist(),
        "proposal_median_s": float(np.median(driver.proposal_seconds)),
        "proposals": len(driver.proposal_seconds),
        "cost_seconds": float(sum(_TASK["cost"][int(c)] for c in trial.history.candidates)),
    }


def summarize(runs: list[dict[str, Any]], optimum: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in sorted({r["workers"] for r in runs}):
        mine = [r for r in runs if r["workers"] == w]
        curves = np.asarray([r["best_so_far"] for r in mine])
        hits = [r["times"][int(np.argmax(np.asarray(r["best_so_far"]) >= optimum - 1e-9))] for r in mine
                if r["best_so_far"][-1] >= optimum - 1e-9]  # fmt: skip
        out[str(w)] = {
            "seeds": len(mine),
            "wall_mean_s": float(np.mean([r["wall_seconds"] for r in mine])),
            "wall_std_s": float(np.std([r["wall_seconds"] for r in mine])),
            "cost_mean_s": float(np.mean([r["cost_seconds"] for r in mine])),
            "best_at": {str(q): float(curves[:, q - 1].mean()) for q in MARKS if q <= curves.shape[1]},
            "best_at_std": {str(q): float(curves[:, q - 1].std()) for q in MARKS if q <= curves.shape[1]},
            "found_optimum": len(hits),
            "time_to_optimum_mean_s": float(np.mean(hits)) if hits else None,
            "proposal_median_s": float(np.median([r["proposal_median_s"] for r in mine])),
        }
    base = out.get("1", {}).get("wall_mean_s")
    for s in out.values():
        s["speedup"] = base / s["wall_mean_s"] if base else None
    return out


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from svge_cli.explore.plots import save_figure

    fig, (by_time, by_query) = plt.subplots(1, 2, figsize=(11, 4))
    for w in sorted({r["workers"] for r in runs}):
        mine = [r for r in runs if r["workers"] == w]
        grid = np.linspace(0, max(r["times"][-1] for r in mine), 200)
        at = np.asarray([[max([b for t, b in zip(r["times"], r["best_so_far"]) if t <= g], default=np.nan)
                          for g in grid] for r in mine])  # fmt: skip
        by_time.plot(grid, np.nanmean(at, 0), label=f"{w} worker(s)")
        by_query.plot(np.arange(1, len(mine[0]["best_so_far"]) + 1), np.mean([r["best_so_far"] for r in mine], 0),
                      label=f"{w} worker(s)")  # fmt: skip
    for ax, x in ((by_time, "wall seconds"), (by_query, "queries")):
        ax.set_xlabel(x)
        ax.set_ylabel("best NB201 validation accuracy so far (mean over seeds)")
        ax.set_ylim(88, 91.8)
        ax.legend()
    fig.suptitle("svge bo, pool search, simulated training cost")
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shared_data_option(p)
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=150)
    p.add_argument("--mean-cost", type=float, default=1.5, help="seconds of the mean cell's simulated evaluation")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="write every run (curves and times) here, JSON")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    task = load(args.shared_data, args.mean_cost)
    runs: list[dict[str, Any]] = []
    for w in [int(x) for x in args.workers.split(",")]:
        side_by_side = math.ceil(args.seeds / math.ceil(w / 2))
        with ProcessPoolExecutor(side_by_side, initializer=_init, initargs=(task,)) as pool:
            mine = list(pool.map(run_one, [w] * args.seeds, range(args.seeds), [args.budget] * args.seeds))
        runs += mine
        print(f"{w} worker(s): mean wall {np.mean([r['wall_seconds'] for r in mine]):.1f} s", file=sys.stderr)
    summary = summarize(runs, task["optimum"])
    for w, s in summary.items():
        print(
            f"{w} worker(s): wall {s['wall_mean_s']:.1f} ± {s['wall_std_s']:.1f} s  speed-up {s['speedup']:.2f}x  "
            f"best@150 {s['best_at'].get('150', float('nan')):.3f}  optimum {s['found_optimum']}/{s['seeds']}"
            f"  time to it {s['time_to_optimum_mean_s']}  proposal median {s['proposal_median_s']:.3f} s"
        )
    if args.plot:
        plot(runs, args.plot)
    if args.out:
        args.out.write_text(json.dumps(runs))
    facts = {"budget": args.budget, "seeds": args.seeds, "mean_cost_s": args.mean_cost, "by_workers": summary}
    if args.json:
        print(json.dumps(facts))


if __name__ == "__main__":
    main()
