"""Check the network builders' parameter counts against the published ones.

    python benchmarks/network_params.py [--shared-data DIR] [--construct N | --construct-all] [--json]

Reads nb101/nb101_1k.jsonl (``params``, 1,000 cells) and nb201/nb201_cifar10.csv
(``params_mb``, all 15,625 cells).  Every cell is counted from its structure
(`svge_cli.networks.counting`, microseconds a cell); the 1,000 NB101 cells and
N seeded NB201 cells (all with --construct-all) are also built as torch modules
on the meta device and their parameters summed, which checks the builders
themselves.  A count matches when it equals the published number exactly
(NB201: to the 1e-6 MB the table prints).  Prints the matches, the mismatches
grouped by difference, and the time taken.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import NB101_FILE, NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.arch import Arch  # noqa: E402
from svge_cli.networks import params_of  # noqa: E402
from svge_cli.networks.counting import counts  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402


def nb101_cells(path: Path) -> tuple[list[Arch], list[int]]:
    space = get_space("nb101")
    cells, params = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            cells.append(Arch(np.asarray([space.type_index(op) for op in row["ops"]]), np.asarray(row["adj"])))
            params.append(int(row["params"]))
    return cells, params


def nb201_cells(path: Path) -> tuple[list[Arch], list[int], list[str]]:
    space = get_space("nb201")
    cells, params, names = [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cells.append(space.parse_native(row["arch"]))
            params.append(round(float(row["params_mb"]) * 1e6))  # the table prints MB to 6 decimals
            names.append(row["arch"])
    return cells, params, names


def check(space: str, cells: list[Arch], published: list[int], construct: list[int]) -> dict:
    start = time.perf_counter()
    counted = [counts(a, space).params for a in cells]
    seconds_counted = time.perf_counter() - start
    diffs = Counter(c - p for c, p in zip(counted, published) if c != p)
    start = time.perf_counter()
    built = {i: params_of(cells[i], space) for i in construct}
    seconds_built = time.perf_counter() - start
    return {
        "cells": len(cells),
        "counted_match": sum(c == p for c, p in zip(counted, published)),
        "counted_seconds": round(seconds_counted, 3),
        "mismatch_differences": {str(k): v for k, v in sorted(diffs.items(), key=lambda kv: -kv[1])},
        "built": len(built),
        "built_match": sum(built[i] == published[i] for i in built),
        "built_equals_counted": sum(built[i] == counted[i] for i in built),
        "built_seconds": round(seconds_built, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument(
        "--construct",
        type=int,
        default=1000,
        help="NB201 cells (seeded sample) to also build as modules (default 1000)",
    )
    parser.add_argument("--construct-all", action="store_true", help="build all 15,625 NB201 networks (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = {"nb101": args.shared_data / NB101_FILE, "nb201": args.shared_data / NB201_FILE}
    for path in paths.values():
        if not path.is_file():
            print(f"error: {path}: no such file (pass --shared-data)", file=sys.stderr)
            return 2
    report = {}
    cells, published = nb101_cells(paths["nb101"])
    report["nb101"] = check("nb101", cells, published, list(range(len(cells))))
    cells, published, _ = nb201_cells(paths["nb201"])
    sample = (
        list(range(len(cells)))
        if args.construct_all
        else sorted(
            np.random.default_rng(args.seed).choice(len(cells), min(args.construct, len(cells)), replace=False).tolist()
        )
    )
    report["nb201"] = check("nb201", cells, published, sample)
    for space, r in report.items():
        print(
            f"{space}: structure count matches {r['counted_match']:,} / {r['cells']:,} published "
            f"({r['counted_seconds']} s); built modules match {r['built_match']:,} / {r['built']:,} "
            f"and equal the structure count for {r['built_equals_counted']:,} ({r['built_seconds']} s)"
        )
        if r["mismatch_differences"]:
            print(f"  mismatches, ours minus published: {r['mismatch_differences']}")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
