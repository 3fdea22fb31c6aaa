"""Check svge's NAS-Bench-101 hash against the official hashes of 1,000 real cells.

    python benchmarks/nb101_hash_check.py [--shared-data DIR] [--json]

Reads nb101/nb101_1k.jsonl (cells with the official module hash), hashes every
cell with the reference implementation (one cell at a time) and with the
vectorised one the enumeration uses, and prints how many of each match.
Exits non-zero when any hash differs.  With --json the last line is one JSON object.
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

from svge_cli.arch import Arch  # noqa: E402
from svge_cli.artifacts import Dataset  # noqa: E402
from svge_cli.spaces.nb101 import NB101Space  # noqa: E402
from svge_cli.spaces.nb101_hash import hash_arrays  # noqa: E402


def load_cells(path: Path, space: NB101Space) -> tuple[list[Arch], list[str]]:
    """The cells and official hashes of a JSON lines file with ops, adj and hash keys."""
    cells, hashes = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            cells.append(Arch(np.asarray([space.type_index(op) for op in row["ops"]]), np.asarray(row["adj"])))
            hashes.append(row["hash"])
    return cells, hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser, help=f"folder holding {NB101_FILE} (default ../shared/data or $SVGE_SHARED_DATA)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    path = args.shared_data / NB101_FILE
    if not path.is_file():
        print(f"error: {path}: no such file (pass --shared-data)", file=sys.stderr)
        return 2
    space = NB101Space()
    cells, official = load_cells(path, space)

    start = time.perf_counter()
    reference = [space.hash(c) for c in cells]
    seconds_reference = time.perf_counter() - start
    start = time.perf_counter()
    ds = Dataset.from_archs("nb101", [space.canonical(c) for c in cells], official, space.max_nodes)
    vectorised = hash_arrays(ds.ops, ds.adj, ds.n_nodes, workers=1).tolist()
    seconds_vectorised = time.perf_counter() - start

    matched = sum(a == b for a, b in zip(reference, official))
    matched_vectorised = sum(a == b for a, b in zip(vectorised, official))
    print(
        f"{path}: {matched} / {len(cells)} official hashes match (reference, {seconds_reference:.3f} s); "
        f"{matched_vectorised} / {len(cells)} (vectorised, {seconds_vectorised:.3f} s)"
    )
    for cell, ours, theirs in zip(cells, reference, official):
        if ours != theirs:
            print(f"    mismatch: {space.format_native(cell)} official {theirs} svge {ours}")
    ok = matched == matched_vectorised == len(cells)
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "cells": len(cells),
                    "matched": matched,
                    "matched_vectorised": matched_vectorised,
                    "seconds_reference": round(seconds_reference, 4),
                    "seconds_vectorised": round(seconds_vectorised, 4),
                    "ok": ok,
                }
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
