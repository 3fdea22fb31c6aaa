"""Import every file of the shared benchmark data and check the published figures.

    python benchmarks/check_data.py [--shared-data DIR] [--json]

Prints per file: rows, split sizes, label ranges and import time; then checks the
known facts (D-VAE's 17,118 / 1,902 ENAS split and its exact shuffled order, the
NB201 best CIFAR-10 test accuracy of 94.37 and 6,466 functional classes, the
NB101 official hashes of 1,000 cells).  Exits non-zero when a check fails.
With --json the last line is one JSON object with everything printed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import add_shared_data_option  # noqa: E402

from svge_cli.artifacts import SPLIT_TEST, SPLIT_TRAIN, Dataset  # noqa: E402
from svge_cli.errors import StoreError  # noqa: E402
from svge_cli.spaces import SPACES, get_space  # noqa: E402
from svge_cli.storage.datasets import summarize  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402

Check = tuple[str, bool, str]  # (name, passed, detail)


def check_enas(ds: Dataset, path: Path) -> list[Check]:
    """The D-VAE split sizes, the score range, and the order D-VAE's own shuffle of the raw lines gives."""
    train, test = int((ds.split == SPLIT_TRAIN).sum()), int((ds.split == SPLIT_TEST).sum())
    acc = ds.labels["ws_acc"]
    pairs = [ln.rsplit(",", 1) for ln in path.read_text().splitlines()[1000:]]
    random.Random(0).shuffle(pairs)
    space = get_space("enas")
    same = all(
        space.format_native(ds.arch(i)) == row.strip() and abs(acc[i] - float(y)) < 1e-12
        for i, (row, y) in enumerate(pairs)
    )
    return [
        ("enas D-VAE split 17,118 / 1,902", (train, test) == (17_118, 1_902), f"{train} / {test}"),
        ("enas rows in D-VAE's shuffled order", same, f"first train row {space.format_native(ds.arch(0))}"),
        (
            "enas ws_acc within 0.702-0.750",
            0.7015 <= acc.min() and acc.max() <= 0.7505,
            f"{acc.min():.4f}-{acc.max():.4f}",
        ),
        ("enas distinct cells", True, f"{len(np.unique(ds.hashes))} of {len(ds)} (D-VAE's file repeats some)"),
    ]


def check_nb201(ds: Dataset, path: Path) -> list[Check]:
    """Row count, best accuracies, functional classes, and that `index` is the enumeration's order."""
    enum_hashes = get_space("nb201").enumerate_dataset().hashes
    index = ds.labels["index"].astype(int)
    best = float(np.max(ds.labels["cifar10_test"]))
    best_val = float(np.max(ds.labels["cifar10_valid_val"]))
    classes = len(np.unique(ds.labels["equiv_class"]))
    return [
        ("nb201 rows 15,625", len(ds) == 15_625, str(len(ds))),
        ("nb201 best cifar10_test 94.37", round(best, 2) == 94.37, f"{best:.4f}"),
        ("nb201 best cifar10_valid_val 91.61", round(best_val, 2) == 91.61, f"{best_val:.4f}"),
        ("nb201 functional classes 6,466", classes == 6_466, str(classes)),
        ("nb201 index = enumeration order", bool(np.all(enum_hashes[index] == ds.hashes)), "all rows"),
    ]


def check_nb101(ds: Dataset, path: Path) -> list[Check]:
    # the JSON lines importer already refused any row whose official hash differs from svge's
    return [("nb101 rows 1,000 with official hashes", len(ds) == 1_000, str(len(ds)))]


CHECKS: dict[str, Callable[[Dataset, Path], list[Check]]] = {
    "final_structures6.txt": check_enas,
    "nb201_cifar10.csv": check_nb201,
    "nb101_1k.jsonl": check_nb101,
}


def import_all(root: Path) -> tuple[list[dict[str, Any]], list[Check]]:
    """Import each data file (its folder names the space) and run the checks known for it."""
    files, checks = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root):
        space = path.parent.name
        if space not in SPACES:
            continue
        start = time.perf_counter()
        try:
            ds = import_file(space, path)
        except StoreError as e:
            checks.append((f"import {path.name}", False, str(e)))
            continue
        seconds = time.perf_counter() - start
        files.append(summarize(ds) | {"file": str(path.relative_to(root)), "seconds": round(seconds, 3)})
        if path.name in CHECKS:
            checks += CHECKS[path.name](ds, path)
    return files, checks


def show(files: list[dict[str, Any]], checks: list[Check]) -> None:
    for f in files:
        split = f" split {f['split']['train']:,}/{f['split']['test']:,}" if "split" in f else ""
        print(
            f"{f['file']}: {f['rows']:,} {f['space']} rows ({f['unique_hashes']:,} unique){split}, "
            f"imported in {f['seconds']:.2f} s"
        )
        for name, col in f["labels"].items():
            print(f"    {name:<20} {col['min']:>12.6g} .. {col['max']:<12.6g} (n={col['count']:,})")
    for name, ok, detail in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    if not args.shared_data.is_dir():
        print(f"error: {args.shared_data}: no such folder (pass --shared-data)", file=sys.stderr)
        return 2
    files, checks = import_all(args.shared_data)
    show(files, checks)
    ok = bool(checks) and all(passed for _, passed, _ in checks)
    if args.json:
        print(
            json.dumps(
                {"files": files, "checks": [{"name": n, "ok": bool(p), "detail": d} for n, p, d in checks], "ok": ok}
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
