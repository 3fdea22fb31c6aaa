"""Training throughput of `svge train-vae --nproc N` and the cost of the per-cell noise.

Each world size trains the same seeded subset for --epochs epochs with a fixed
global batch; throughput is training cells / epoch seconds over the epochs after
the first (start-up and warm-up excluded), scaling efficiency is
throughput(N) / (N * throughput(1)), and time to accuracy is the summed epoch
seconds until the test reconstruction first reaches --target (evaluated every
epoch).  Run with OMP_NUM_THREADS=1: each process uses one thread.

    OMP_NUM_THREADS=1 python benchmarks/distributed_training.py --nproc 1 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from svge_cli.storage import store  # noqa: E402
from svge_cli.training.noise import cell_noise  # noqa: E402


def train(work: Path, nproc: int, a: argparse.Namespace) -> dict:
    """One train-vae run at world size `nproc`; its history's figures."""
    out = work / f"run{nproc}"
    args = [sys.executable, "-m", "svge_cli", "--workdir", str(work / "ws"), "--threads", "1", "-q", "train-vae"]
    args += ["--space", a.space, "--limit", str(a.limit), "--epochs", str(a.epochs), "--batch-size", str(a.batch)]
    args += ["--out", str(out), "--nproc", str(nproc), "--device", a.device, "--eval-every", "1"]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, timeout=a.timeout)
    ck = store.load_checkpoint(str(out / "last.h5"))
    cells, hist = len(ck.arrays["train_rows"]), ck.history
    steady = [e["seconds"] for e in hist[1:]] or [hist[0]["seconds"]]
    reached = [i for i, e in enumerate(hist) if e.get("test_recon_greedy", -1.0) >= a.target]
    tta = sum(e["seconds"] for e in hist[: reached[0] + 1]) if reached else None
    recon = [e.get("test_recon_greedy") for e in hist]
    return {
        "nproc": nproc,
        "cells": cells,
        "graphs_per_s": cells / float(np.median(steady)),
        "tta_s": tta,
        "tta_epoch": reached[0] + 1 if reached else None,
        "recon_by_epoch": recon,
        "final_recon": recon[-1],
    }


def noise_cost(batch: int, dim: int, repeats: int) -> dict:
    """Seconds per batch of the per-cell noise against one torch.randn draw of the same shape."""
    torch.set_num_threads(1)
    rows = np.arange(batch)
    cell = timeit.timeit(lambda: torch.from_numpy(cell_noise(0, 1, rows, dim)), number=repeats) / repeats
    plain = timeit.timeit(lambda: torch.randn(batch, dim), number=repeats) / repeats
    return {"batch": batch, "dim": dim, "cell_noise_s": cell, "randn_s": plain}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--space", default="nb201")
    p.add_argument("--limit", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=64, help="global batch")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--target", type=float, default=0.5, help="test reconstruction for time to accuracy")
    p.add_argument("--latent", type=int, default=56, help="latent size for the noise figure")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [train(Path(tmp), n, a) for n in a.nproc]
    base = next((r for r in rows if r["nproc"] == 1), None)
    print(f"{a.space}, {a.limit} cells, global batch {a.batch}, {a.epochs} epochs, {a.device}, 1 thread per process")
    print("nproc  graphs/s  efficiency  time-to-recon>=%.2f  final recon" % a.target)
    for r in rows:
        r["efficiency"] = r["graphs_per_s"] / (r["nproc"] * base["graphs_per_s"]) if base else None
        eff = f"{r['efficiency']:.2f}" if base else "-"
        tta = f"{r['tta_s']:.1f} s (epoch {r['tta_epoch']})" if r["tta_s"] is not None else "not reached"
        print(f"{r['nproc']:>5}  {r['graphs_per_s']:8.1f}  {eff:>10}  {tta:>18}  {r['final_recon']:.3f}")
    noise = noise_cost(a.batch, a.latent, 200)
    print(
        f"noise per batch of {a.batch}x{a.latent}: cell_noise {noise['cell_noise_s'] * 1e6:.0f} us, "
        f"torch.randn {noise['randn_s'] * 1e6:.0f} us"
    )
    if a.json:
        a.json.write_text(
            json.dumps(
                {"args": vars(a) | {"json": str(a.json), "plot": str(a.plot)}, "runs": rows, "noise": noise}, indent=1
            )
        )
    if a.plot:
        plot(rows, a.plot)


def plot(rows: list[dict], path: Path) -> None:
    """Throughput against world size beside the ideal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["nproc"] for r in rows]
    g = [r["graphs_per_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(n, g, "o-", label="measured")
    ax.plot(n, [g[0] * k / n[0] for k in n], "--", label="linear")
    ax.set_xlabel("processes")
    ax.set_ylabel("graphs / s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
