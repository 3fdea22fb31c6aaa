"""Zero-cost proxies against trained accuracy: Spearman rank correlation and cells per second.

    python benchmarks/proxies.py [--spaces nb201 nb101] [--cells N] [--proxies ...] [--batch-size 64]
                                 [--resolution 32] [--network KEY=VALUE ...] [--svge-defaults]
                                 [--cache FILE] [--device cpu|cuda] [--seed 0] [--shared-data DIR] [--json]

NB201: N cells drawn with the seed from nb201/nb201_cifar10.csv (all 15,625
have labels), scored against ``cifar10_test``.  NB101: the first N cells of
nb101/nb101_1k.jsonl, scored against ``val_acc_108``.  Each proxy scores every
cell exactly as `svge score` does (`networks.proxies.proxy_scores`: a network
initialised from the seed, one seeded random batch).  Also reports the
Spearman of ``rank_sum``, the sum of the cells' ranks under synflow, jacob_cov
and snip (a simple stand-in for Abdelfattah et al.'s vote of those three).
Cells per second include building each network; cells per CPU second (the
process's own CPU time) show the speed on an unshared core when the machine is busy.
``--resolution`` (input images R x R), ``--network`` (builder options, e.g.
``channels=8 n=1`` for NB201, ``stem_channels=16`` for NB101) and ``--batch-size``
are the cheap settings a predictor's proxies use; ``--svge-defaults`` takes
svge's measured defaults per space (`networks.proxytable.DEFAULT_SETTINGS`).
``--cache FILE`` also keeps every value in an svge proxy cache (the workspace's
format), which `benchmarks/prediction.py --proxy-cache` reads; ``--cells 0``
scores every cell of the file.  ``--save-scores FILE`` keeps
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
from svge_cli.networks.proxies import PROXIES  # noqa: E402
from svge_cli.networks.proxytable import ProxySettings, compute_table, settings_for  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage.proxycache import ProxyCache  # noqa: E402

TARGETS = {"nb201": "cifar10_test", "nb101": "val_acc_108"}
VOTE = ("synflow", "jacob_cov", "snip")


def nb201_cells(path: Path, n: int, seed: int) -> tuple[list[Arch], np.ndarray]:
    space = get_space("nb201")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    n = len(rows) if n <= 0 else min(n, len(rows))
    pick = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return (
        [space.parse_native(rows[i]["arch"]) for i in pick],
        np.asarray([float(rows[i]["cifar10_test"]) for i in pick]),
    )


def nb101_cells(path: Path, n: int) -> tuple[list[Arch], np.ndarray]:
    space = get_space("nb101")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = rows[:n] if n > 0 else rows
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
    parser.add_argument("--resolution", type=int, default=32, help="input images R x R (default 32)")
    parser.add_argument("--network", nargs="*", default=[], metavar="KEY=VALUE", help="network builder options")
    parser.add_argument("--svge-defaults", action="store_true", help="svge's default proxy settings per space")
    parser.add_argument("--cache", type=Path, default=None, help="keep every value in this svge proxy cache")
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


def settings(args: argparse.Namespace, space: str) -> ProxySettings:
    if args.svge_defaults:
        return settings_for(get_space(space))
    net = tuple(sorted((k, int(v)) for k, _, v in (item.partition("=") for item in args.network)))
    return ProxySettings(args.batch_size, args.resolution, args.seed, net)


def score_all(args: argparse.Namespace) -> dict:
    report: dict = {"device": args.device, "batch_size": args.batch_size, "seed": args.seed, "spaces": {}}
    for space in args.spaces:
        path = args.shared_data / (NB201_FILE if space == "nb201" else NB101_FILE)
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file (pass --shared-data)")
        cells, truth = nb201_cells(path, args.cells, args.seed) if space == "nb201" else nb101_cells(path, args.cells)
        how = settings(args, space)
        result: dict = {
            "cells": len(cells),
            "target": TARGETS[space],
            "settings": how.to_dict(),
            "truth": truth.tolist(),
            "proxies": {},
        }
        cache = (
            ProxyCache(args.cache.with_name(f"{args.cache.stem}-{space}{args.cache.suffix}"), space)
            if args.cache
            else None
        )
        hashes = [get_space(space).hash(c) for c in cells]
        for proxy in args.proxies:
            start, cpu_start = time.perf_counter(), time.process_time()
            scores = compute_table(space, cells, [proxy], how, device=args.device)[:, 0]
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            if cache is not None:
                cache.add(how.key(proxy), hashes, scores)
                cache.save()
            result["proxies"][proxy] = {
                "spearman": round(rho(scores, truth), 4),
                "cells_per_second": round(len(cells) / seconds, 2),
                "cells_per_cpu_second": round(len(cells) / cpu_seconds, 2),
                "cpu_seconds_per_cell": round(cpu_seconds / len(cells), 4),
                "degenerate": int((~np.isfinite(scores)).sum()),
                "scores": [float(v) if np.isfinite(v) else None for v in scores],
            }
        rank_sum(result)
        report["spaces"][space] = result
    return report


if __name__ == "__main__":
    sys.exit(main())
