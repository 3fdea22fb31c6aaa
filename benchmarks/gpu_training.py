"""Train the shipped checkpoints on a GPU within a wall-time budget, then evaluate them.

A GPU session is short (minutes), so the epoch count of each run is sized from
a timed probe of its training step instead of being guessed: the probe trains
`--probe-steps` batches with the run's own model and batch size, and the run gets
as many epochs as fit its share of the budget (runs share the GPU side by side,
so each is slowed by the other's kernels; `--overlap` is that factor).

Each run starts from the shipped checkpoint's weights (`train-vae --init-from`),
its checkpoint is exported (fp16 and fp32) to OUT and evaluated there by the
paper's protocol, so a later CPU session can ship or continue it.

    python benchmarks/gpu_training.py --out "$OUT" --budget 420
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svge_cli.model import ModelConfig, SVGe  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage import datasets  # noqa: E402
from svge_cli.storage.workspace import Workspace, pretrained_checkpoint  # noqa: E402
from svge_cli.training.loop import batch_rows, make_optimizer  # noqa: E402


@dataclass(frozen=True)
class Job:
    space: str
    batch_size: int
    lr: float
    warmup: int
    eval_limit: int


JOBS = {
    "nb101": Job("nb101", batch_size=256, lr=1e-3, warmup=500, eval_limit=2000),
    "enas": Job("enas", batch_size=32, lr=3e-4, warmup=300, eval_limit=0),
}


def svge(*args: str, workdir: Path, log: Path | None = None) -> subprocess.Popen:
    env = os.environ | {"SVGE_WORKDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
    out = open(log, "w") if log else None
    return subprocess.Popen([sys.executable, "-m", "svge_cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_seconds(job: Job, ws: Workspace, steps: int, device: str) -> tuple[float, int]:
    """(seconds per training step on `device`, training cells) for `job`."""
    sp = get_space(job.space)
    ds = datasets.embedded_default(sp, ws)
    train = np.nonzero(ds.split == 0)[0]
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes)).to(device).train()
    opt = make_optimizer(model, job.lr)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 3):
        idx = rng.choice(train, job.batch_size, replace=False)
        sync(device)
        began = time.perf_counter()
        out = model.loss(*batch_rows(ds.ops, ds.adj, ds.n_nodes, idx))
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - began)
    return float(np.median(times)), len(train)


def init_weights(space: str, init_dir: Path | None) -> Path:
    """The checkpoint a job starts from: a previous GPU run's export, else the shipped one."""
    return init_dir / f"{space}-fp32.h5" if init_dir else pretrained_checkpoint(space)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds of training (the jobs run side by side)")
    ap.add_argument("--jobs", default="nb101,enas")
    ap.add_argument("--probe-steps", type=int, default=20)
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--init-dir",
        type=Path,
        default=None,
        help="start each job from DIR/<space>-fp32.h5 (a previous GPU run) [default: the shipped one]",
    )
    ap.add_argument("--lr-scale", type=float, default=1.0, help="multiply every job's learning rate")
    ap.add_argument("--overlap", type=float, default=1.6, help="slow-down of each job while the others run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ws_root = Path("/tmp/svge-gpu-ws")
    ws = Workspace(ws_root)
    jobs = [JOBS[name] for name in args.jobs.split(",")]
    began = time.time()
    procs = {}
    for job in jobs:
        sec, cells = step_seconds(job, ws, args.probe_steps, args.device)
        epoch_s = math.ceil(cells / job.batch_size) * sec * args.overlap
        epochs = max(1, int(args.budget / epoch_s))
        print(
            f"{job.space}: {sec * 1000:.1f} ms/step at batch {job.batch_size}, {cells:,} cells, "
            f"~{epoch_s:.0f} s/epoch with overlap -> {epochs} epochs",
            flush=True,
        )
        run = ws_root / job.space / time.strftime("gpu-run-%Y%m%d-%H%M%S")
        procs[job.space] = (
            run,
            svge(
                "train-vae",
                "--space",
                job.space,
                "--init-from",
                str(init_weights(job.space, args.init_dir)),
                "--epochs",
                str(epochs),
                "--batch-size",
                str(job.batch_size),
                "--lr",
                str(job.lr * args.lr_scale),
                "--warmup",
                str(job.warmup),
                "--limit",
                str(10**9),
                "--eval-every",
                "1",
                "--device",
                args.device,
                "--out",
                str(run),
                workdir=ws_root,
                log=args.out / f"{job.space}-train.log",
            ),
        )
    for space, (run, proc) in procs.items():
        rc = proc.wait()
        print(f"{space}: train-vae exited {rc} after {time.time() - began:.0f} s", flush=True)
        if rc != 0:
            continue
        for flag, name in (("--fp16", f"{space}-fp16.h5"), (None, f"{space}-fp32.h5")):
            svge(
                "export", str(run / "last.h5"), "-o", str(args.out / name), *([flag] if flag else []), workdir=ws_root
            ).wait()
    evals = []
    for job in jobs:
        run, proc = procs[job.space]
        run = run / "last.h5"
        if proc.returncode == 0:
            limit = ["--limit", str(job.eval_limit)] if job.eval_limit else []
            evals.append(
                svge(
                    "evaluate",
                    "--space",
                    job.space,
                    "--checkpoint",
                    str(run),
                    "--json",
                    "--device",
                    args.device,
                    *limit,
                    workdir=ws_root,
                    log=args.out / f"{job.space}-evaluate.json",
                )
            )
    for proc in evals:
        proc.wait()
    print(f"done after {time.time() - began:.0f} s", flush=True)
    for f in sorted(args.out.glob("*.json")):
        print(f.name, f.read_text()[-600:])


if __name__ == "__main__":
    main()
