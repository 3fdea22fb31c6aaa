"""Wall time until the SVGe autoencoder reconstructs a target share of held-out test graphs.

    python benchmarks/time_to_accuracy.py [--space enas|nb201] [--data dvae|embedded] [--epochs E]
                                          [--batch-size B] [--lr LR] [--precision fp32|bf16]
                                          [--threads K] [--eval-every k] [--target 0.996]
                                          [--keep DIR] [--json]
    python benchmarks/time_to_accuracy.py --space S --report RUN/last.h5 [--report RUN2/last.h5 ...]
                                          [--target 0.996] [--plot curve.png] [--json]

Trains `svge train-vae --space S` with the given schedule (ENAS: on D-VAE's 17,118 training cells
from `../shared/data`, as in the paper, or on the embedded sampled default; NB201: on the embedded
enumeration of all 15,625 cells) and prints, for every
evaluated epoch, the cumulative wall time (training plus the per-epoch check) and the greedy test
reconstruction accuracy on the held-out cells (up to 2,000); then the time at which the target was
first reached.  `--report` reads the same figures from finished runs' histories instead, and
`--plot` draws accuracy against wall time, one line per run, labelled with its schedule.
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
    p.add_argument("--report", type=Path, action="append", help="only report this checkpoint's history (repeatable)")
    p.add_argument("--plot", type=Path, default=None, help="write accuracy against wall time to this PNG or SVG")
    p.add_argument("--space", choices=["enas", "nb201"], default="enas")
    p.add_argument("--data", choices=["dvae", "embedded"], default="dvae", help="ENAS only; NB201 is embedded")
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
    """Train a fresh run with the asked schedule; its last.h5."""
    root = args.keep or Path(tempfile.mkdtemp(prefix="svge-tta-"))
    dataset = None
    if args.space == "enas" and args.data == "dvae":
        dataset = root / "dvae.h5"
        store.save_dataset(dataset, import_file("enas", args.shared_data / ENAS_FILE))
    configure_cpu(args.threads)
    req = TrainRequest(
        space=args.space,
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


def setting(schedule: dict[str, Any]) -> str:
    """A run's schedule in a few words, for tables and legends."""
    return (
        f"{schedule.get('epochs')} ep, batch {schedule.get('batch_size')}, lr {schedule.get('lr')}, "
        f"{schedule.get('precision', 'fp32')}, seed {schedule.get('seed', 0)}"
    )


def summarize(path: Path, space: str, target: float) -> dict[str, Any]:
    """The timeline of one finished run and when it first reached `target`."""
    ck = store.load_checkpoint(path, space)
    rows = timeline(ck.history)
    reached = next((r for r in rows if r["greedy"] >= 100 * target), None)
    return {
        "checkpoint": str(path),
        "schedule": ck.config.get("schedule"),
        "epochs_run": len(ck.history),
        "timeline": rows,
        "target": target,
        "reached": reached,
    }


def print_run(run: dict[str, Any]) -> None:
    print(f"{run['checkpoint']} ({setting(run['schedule'] or {})})")
    for row in run["timeline"]:
        print(f"epoch {row['epoch']:3d}  {row['minutes']:7.2f} min  greedy test reconstruction {row['greedy']:6.2f}%")
    target, reached = 100 * run["target"], run["reached"]
    if reached:
        print(f"reached {target:.2f}% at epoch {reached['epoch']} after {reached['minutes']:.1f} min")
    else:
        print(f"did not reach {target:.2f}% in {run['epochs_run']} epochs")


def plot(runs: list[dict[str, Any]], path: Path, space: str, target: float) -> None:
    """Greedy test accuracy against cumulative wall time, one line per run (PNG or SVG, written atomically)."""
    from matplotlib.figure import Figure

    from svge_cli.explore.plots import save_figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for run in runs:
        rows = run["timeline"]
        ax.plot([r["minutes"] for r in rows], [r["greedy"] for r in rows], marker="o", label=setting(run["schedule"]))
    ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1, label=f"target {100 * target:g}%")
    ax.set_ylim(0.0, 101.0)
    ax.set_xlabel("wall time (minutes, training + per-epoch check)")
    ax.set_ylabel("greedy test reconstruction (%)")
    ax.set_title(f"svge train-vae --space {space}: time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    paths = args.report or [train(args)]
    runs = [summarize(path, args.space, args.target) for path in paths]
    for run in runs:
        print_run(run)
    if args.plot:
        plot(runs, args.plot, args.space, args.target)
    if args.json:
        print(json.dumps(runs if args.report else runs[0]))


if __name__ == "__main__":
    main()
