"""Wall time until the SVGe autoencoder reconstructs a target share of ENAS test graphs.

    python benchmarks/time_to_accuracy.py [--data dvae|embedded] [--epochs E] [--batch-size B] [--lr LR]
                                          [--precision fp32|bf16] [--threads K] [--eval-every k]
                                          [--target 0.996] [--keep DIR] [--json]
    python benchmarks/time_to_accuracy.py --report RUN/last.h5 [--target 0.996] [--json]

Trains `svge train-vae --space enas` with the given schedule (on D-VAE's 17,118 training cells from
`../shared/data`, as in the paper, or on the embedded sampled default) and prints, for every
evaluated epoch, the cumulative wall time (training plus the per-epoch check) and the greedy test
reconstruction accuracy on the held-out cells (up to 2,000); then the time at which the target was
first reached.  `--report` reads the same figures from a finished run's history instead.
The paper's figure (10 encodes x 10 decodes per test cell) is `svge evaluate` on the final
checkpoint; greedy accuracy is what can be checked every epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import ENAS_FILE, add_shared_data_option  # noqa: E402

from svge_cli.console import Ui  # noqa: E402
from svge_cli.model import configure_cpu  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.workspace import Workspace  # noqa: E402
from svge_cli.training.vae import TrainRequest, train_vae  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--report", type=Path, default=None, help="only report the history of this checkpoint")
    p.add_argument("--data", choices=["dvae", "embedded"], default="dvae")
    add_shared_data_option(p)
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=0.996)
    p.add_argument("--keep", type=Path, default=None, help="workspace folder (default: a temporary one)")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def train(args: argparse.Namespace) -> Path:
    """Train a fresh ENAS run with the asked schedule; its last.h5."""
    root = args.keep or Path(tempfile.mkdtemp(prefix="svge-tta-"))
    dataset = None
    if args.data == "dvae":
        dataset = root / "dvae.h5"
        store.save_dataset(dataset, import_file("enas", args.shared_data / ENAS_FILE))
    configure_cpu(args.threads)
    req = TrainRequest(
        space="enas",
        dataset=str(dataset) if dataset else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        precision=args.precision,
        seed=args.seed,
        out_dir=str(root / "run"),
    )
    return train_vae(Ui(Workspace(root)), req)


def timeline(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(epoch, cumulative minutes, greedy test accuracy) for every evaluated epoch."""
    rows, seconds = [], 0.0
    for entry in history:
        seconds += entry.get("seconds", 0.0)
        if entry.get("test_recon_greedy") is not None:
            rows.append(
                {
                    "epoch": entry["epoch"],
                    "minutes": round(seconds / 60, 2),
                    "greedy": round(100 * entry["test_recon_greedy"], 2),
                }
            )
    return rows


def main() -> None:
    args = parse_args()
    path = args.report or train(args)
    ck = store.load_checkpoint(path, "enas")
    rows = timeline(ck.history)
    for row in rows:
        print(f"epoch {row['epoch']:3d}  {row['minutes']:7.2f} min  greedy test reconstruction {row['greedy']:6.2f}%")
    reached = next((r for r in rows if r["greedy"] >= 100 * args.target), None)
    verdict = (
        f"reached {100 * args.target:.2f}% at epoch {reached['epoch']} after {reached['minutes']:.1f} min"
        if reached
        else f"did not reach {100 * args.target:.2f}% in {len(ck.history)} epochs"
    )
    print(f"{path}: {verdict}")
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(path),
                    "schedule": ck.config.get("schedule"),
                    "timeline": rows,
                    "target": args.target,
                    "reached": reached,
                }
            )
        )


if __name__ == "__main__":
    main()
