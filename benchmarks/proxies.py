"""Zero-cost proxies against trained accuracy: Spearman rank correlation and cells per second.

    python benchmarks/proxies.py [--spaces nb201 nb101] [--cells N] [--proxies ...] [--batch-size 64]
                                 [--device cpu|cuda] [--seed 0] [--shared-data DIR] [--json]

NB201: N cells drawn with the seed from nb201/nb201_cifar10.csv (all 15,625
have labels), scored against ``cifar10_test``.  NB101: the first N cells of
nb101/nb101_1k.jsonl, scored against ``val_acc_108``.  Each proxy scores every
cell exactly as `svge score` does (`networks.proxies.proxy_scores`: a network
initialised from the seed, one seeded random batch).  Also reports the
Spearman of ``rank_sum``, the sum of the cells' ranks under synflow, jacob_cov
and snip (a simple stand-in for Abdelfattah et al.'s vote of those three).
Cells per second include building each network; cells per CPU second (the
process's own CPU time) show the speed on an unshared core when the machine is busy.  ``--save-scores FILE`` keeps
every score; ``--merge FILE...`` reports on saved scores without scoring again
(so proxies can run in parallel processes, one per proxy, and be combined).  Published (Abdelfattah et
al., ICLR 2021, NB201 CIFAR-10, real data): synflow 0.74, jacob_cov 0.73,
snip 0.58, grad_norm 0.58, vote 0.82.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import NB101_FILE, NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.arch import Arch  # noqa: E402
from svge_cli.networks.proxies import PROXIES, proxy_scores  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402

TARGETS = {"nb201": "cifar10_test", "nb101": "val_acc_108"}
VOTE = ("synflow", "jacob_cov", "snip")


def nb201_cells(path: Path, n: int, seed: int) -> tuple[list[Arch], np.ndarray]:
    space = get_space("nb201")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    pick = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return (
        [space.parse_native(rows[i]["arch"]) for i in pick],
        np.asarray([float(rows[i]["cifar10_test"]) for i in pick]),
    )


def nb101_cells(path: Path, n: int) -> tuple[list[Arch], np.ndarray]:
    space = get_space("nb101")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:n]
    return (
        [
            space.canonical(Arch(np.asarray([space.type_index(o) for o in r["ops"]]), np.asarray(r["adj"])))
            for r in rows
        ],
        np.asarray([float(r["val_acc_108"]) for r in rows]),
    )


def rho(scores: np.ndarray, truth: np.ndarray) -> float:
    """Spearman with -inf scores (degenerate networks) ranked last; nan when scores are constant."""
    finite = np.where(np.isfinite(scores), scores, np.nanmin(np.where(np.isfinite(scores), scores, np.nan)) - 1)
    return float(spearmanr(finite, truth).statistic)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument("--spaces", nargs="+", default=["nb201", "nb101"], choices=sorted(TARGETS))
    parser.add_argument("--cells", type=int, default=1000, help="cells per space (default 1000)")
    parser.add_argument("--proxies", nargs="+", default=list(PROXIES), choices=PROXIES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-scores", type=Path, default=None, help="write every score to this JSON file")
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="report on --save-scores files instead of scoring"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.merge:
        report = merge(args.merge)
    else:
        report = score_all(args)
        if args.save_scores is not None:
            args.save_scores.write_text(json.dumps(report))
    for space, result in report["spaces"].items():
        for proxy, r in result["proxies"].items():
            per_cpu = f", {r['cells_per_cpu_second']:.2f} per CPU second" if "cells_per_cpu_second" in r else ""
            print(
                f"{space} {proxy:>9}: spearman {r['spearman']:+.4f} vs {result['target']}, "
                f"{r['cells_per_second']:8.2f} cells/s{per_cpu} ({result['cells']} cells)",
                flush=True,
            )
        if "rank_sum" in result:
            print(f"{space}  rank sum of {', '.join(VOTE)}: spearman {result['rank_sum']:+.4f}")
    if args.json:
        slim = {k: v for k, v in report.items() if k != "spaces"}
        slim["spaces"] = {
            s: {
                k: ({p: {q: w for q, w in r.items() if q != "scores"} for p, r in v.items()} if k == "proxies" else v)
                for k, v in res.items()
                if k != "truth"
            }
            for s, res in report["spaces"].items()
        }
        print(json.dumps(slim))
    return 0


def rank_sum(result: dict) -> None:
    if all(p in result["proxies"] for p in VOTE):
        truth = np.asarray(result["truth"])
        total = sum(_ranks(np.asarray(result["proxies"][p]["scores"], dtype=np.float64)) for p in VOTE)
        result["rank_sum"] = round(rho(total.astype(np.float64), truth), 4)


def _ranks(scores: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(np.where(np.isfinite(scores), scores, -np.inf), kind="stable"))


def merge(paths: list[Path]) -> dict:
    report: dict = {"spaces": {}}
    for path in paths:
        part = json.loads(path.read_text())
        for key in ("device", "batch_size", "seed"):
            report.setdefault(key, part[key])
        for space, result in part["spaces"].items():
            into = report["spaces"].setdefault(
                space, {k: v for k, v in result.items() if k != "proxies"} | {"proxies": {}}
            )
            if into["truth"] != result["truth"]:
                raise SystemExit(f"{path}: other {space} cells than the files before it")
            into["proxies"].update(result["proxies"])
    for result in report["spaces"].values():
        rank_sum(result)
    return report


def score_all(args: argparse.Namespace) -> dict:
    report: dict = {"device": args.device, "batch_size": args.batch_size, "seed": args.seed, "spaces": {}}
    for space in args.spaces:
        path = args.shared_data / (NB201_FILE if space == "nb201" else NB101_FILE)
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file (pass --shared-data)")
        cells, truth = nb201_cells(path, args.cells, args.seed) if space == "nb201" else nb101_cells(path, args.cells)
        result: dict = {"cells": len(cells), "target": TARGETS[space], "truth": truth.tolist(), "proxies": {}}
        for proxy in args.proxies:
            start, cpu_start = time.perf_counter(), time.process_time()
            scores = proxy_scores(space, cells, proxy, seed=args.seed, batch_size=args.batch_size, device=args.device)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            result["proxies"][proxy] = {
                "spearman": round(rho(scores, truth), 4),
                "cells_per_second": round(len(cells) / seconds, 2),
                "cells_per_cpu_second": round(len(cells) / cpu_seconds, 2),
                "degenerate": int((~np.isfinite(scores)).sum()),
                "scores": [float(v) if np.isfinite(v) else None for v in scores],
            }
        rank_sum(result)
        report["spaces"][space] = result
    return report


if __name__ == "__main__":
    sys.exit(main())
