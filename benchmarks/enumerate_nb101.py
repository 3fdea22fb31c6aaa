"""Time the enumeration of every unique NAS-Bench-101 cell (423,624 expected).

    python benchmarks/enumerate_nb101.py [--shared-data DIR] [--workers N] [--max-vertices K] [--json]

Prints the number of cells, the wall-clock seconds and the count per vertex
number.  When nb101/nb101_1k.jsonl is found under --shared-data, also checks
that each of those real cells is in the enumeration under its official hash,
as the very same cell (the official generator's representative).  Exits
non-zero when a check fails.  With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import NB101_FILE, add_shared_data_option  # noqa: E402

from svge_cli.artifacts import Dataset  # noqa: E402
from svge_cli.spaces.nb101 import MAX_NODES, NB101Space, enumerate_dataset  # noqa: E402
from svge_cli.spaces.nb101_hash import default_workers  # noqa: E402

EXPECTED = 423_624


def check_real_cells(ds: Dataset, path: Path) -> dict[str, int]:
    """How many real cells' hashes the enumeration has, and how many as the identical cell."""
    space, position = NB101Space(), {h: i for i, h in enumerate(ds.hashes.tolist())}
    found = same = total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row, total = json.loads(line), total + 1
        i = position.get(row["hash"])
        if i is None:
            continue
        found += 1
        cell = ds.arch(i)
        same += (cell.ops.tolist() == [space.type_index(op) for op in row["ops"]]) and cell.adj.tolist() == row["adj"]
    return {"real_cells": total, "found": found, "identical": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser, help=f"folder holding {NB101_FILE} (default ../shared/data or $SVGE_SHARED_DATA)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="hashing processes (default: all CPUs)")
    parser.add_argument("--max-vertices", type=int, default=MAX_NODES, help="enumerate cells up to this size (2..7)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()

    start = time.perf_counter()
    ds = enumerate_dataset(args.max_vertices, workers=args.workers)
    seconds = time.perf_counter() - start
    per_size = {int(n): int(c) for n, c in zip(*np.unique(ds.n_nodes, return_counts=True))}
    result: dict = {
        "cells": len(ds),
        "seconds": round(seconds, 2),
        "workers": args.workers,
        "max_vertices": args.max_vertices,
        "per_vertex_count": per_size,
    }
    print(f"nb101 enumeration: {len(ds):,} unique cells in {seconds:.1f} s ({args.workers} workers)")
    print("    per vertex count: " + ", ".join(f"{n}: {c:,}" for n, c in per_size.items()))
    ok = args.max_vertices != MAX_NODES or len(ds) == EXPECTED
    if args.max_vertices == MAX_NODES:
        print(f"[{'ok' if len(ds) == EXPECTED else 'FAIL'}] {EXPECTED:,} cells expected")
    path = args.shared_data / NB101_FILE
    if path.is_file():
        real = check_real_cells(ds, path)
        result |= real
        good = real["identical"] == real["found"] == real["real_cells"] or args.max_vertices != MAX_NODES
        ok &= good
        print(
            f"[{'ok' if good else 'FAIL'}] {real['found']} / {real['real_cells']} real cells found by hash, "
            f"{real['identical']} as the identical cell"
        )
    else:
        print(f"    ({path} not found: real-cell check skipped)")
    result["ok"] = ok
    if args.json:
        print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
