"""Training and decoding throughput of the SVGe model on the CPU (graphs per second).

Usage:  python benchmarks/train_throughput.py [--space enas|nb101] [--batch-size B]
            [--seconds T] [--threads K] [--precision fp32|bf16] [--json]

Graphs are random DAGs of the space's shape (ENAS: 8 nodes, 8 types, a chain plus
random skips; NB101: 7 nodes, 5 types, random cells), so no data files are needed.
Each figure is the best of many short windows: other processes on a small machine
slow single windows down, and the best window is the closest to the code's own
speed (the median is printed too).  On a busy machine `--threads 1 --clock cpu`
counts graphs per second of this process's CPU time instead of wall time: the
speed of one quiet core, nearly independent of the other load.  Decoding uses a model whose end type is never
chosen before the node limit, so every graph is grown to the full 8 (ENAS) or
7 (NB101) nodes, like decoding a trained model on those spaces.  `--precision bf16`
measures the optional bfloat16-matmul mode (svge_cli.model.bf16_matmuls).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from svge_cli.model import ModelConfig, SVGe, bf16_matmuls, configure_cpu  # noqa: E402
from svge_cli.training.loop import make_optimizer  # noqa: E402

SPACES = {"enas": (8, 8), "nb101": (7, 5)}  # nodes, vocabulary


def enas_like(rng: np.random.Generator, count: int, nodes: int, vocab: int) -> tuple[np.ndarray, ...]:
    """Input, a chain of operations with random skip connections, output."""
    ops = np.empty((count, nodes), np.int64)
    ops[:, 0], ops[:, -1] = 0, 1
    ops[:, 1:-1] = rng.integers(2, vocab, (count, nodes - 2))
    adj = np.triu(rng.random((count, nodes, nodes)) < 0.5, 1).astype(np.uint8)
    adj[:, :, -1] = 0
    idx = np.arange(nodes - 1)
    adj[:, idx, idx + 1] = 1
    return ops, adj, np.full(count, nodes, np.int64)


def nb101_like(rng: np.random.Generator, count: int, nodes: int, vocab: int) -> tuple[np.ndarray, ...]:
    """Random upper-triangular cells where every node has an input and an output."""
    ops, adj, n = enas_like(rng, count, nodes, vocab)
    adj[:] = np.triu(rng.random((count, nodes, nodes)) < 0.3, 1)
    for v in range(1, nodes):  # give every node a predecessor and every node a successor
        lonely = adj[:, :v, v].sum(1) == 0
        adj[lonely, rng.integers(0, v, lonely.sum()), v] = 1
    for v in range(nodes - 1):
        lonely = adj[:, v, v + 1 :].sum(1) == 0
        adj[lonely, v, rng.integers(v + 1, nodes, lonely.sum())] = 1
    return ops, adj, n


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Meter:
    """Rates over windows of about `window` seconds of `clock`, for `seconds` of wall time."""

    clock: Callable[[], float]
    seconds: float
    window: float = 0.5

    def rate(self, work: Callable[[], int]) -> tuple[float, float]:
        """(best, median) items per clock second; `work` does one unit and returns its item count."""
        work()  # warm-up
        rates: list[float] = []
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end or len(rates) < 3:
            t0, items = self.clock(), 0
            while self.clock() - t0 < self.window:
                items += work()
            rates.append(items / (self.clock() - t0))
        return max(rates), statistics.median(rates)


def train_rate(meter: Meter, model: SVGe, data: tuple[np.ndarray, ...], batch: int) -> tuple[float, float]:
    model.train()
    opt = make_optimizer(model, 1e-4)
    ops, adj, n = (torch.as_tensor(a) for a in data)
    batches = itertools.cycle([slice(i * batch, (i + 1) * batch) for i in range(len(n) // batch)])

    def step() -> int:
        rows = next(batches)
        loss = model.loss(ops[rows], adj[rows], n[rows])["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return batch

    return meter.rate(step)


def decode_rate(meter: Meter, model: SVGe, batch: int) -> tuple[float, float, float]:
    model.eval()
    with torch.no_grad():  # never end early: every graph grows to max_nodes
        model.decoder.add_node.second.bias[:, (0, 1)] = -1e4
    z = torch.randn(batch, model.cfg.latent, generator=torch.Generator().manual_seed(1))
    sizes: list[float] = []

    def step() -> int:
        sizes.append(float(model.decode(z)[2].mean()))
        return batch

    best, median = meter.rate(step)
    return best, median, statistics.mean(sizes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", choices=sorted(SPACES), default="enas")
    ap.add_argument("--batch-size", type=int, default=None, help="training batch (default: both 32 and 128)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="matmul input precision")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (use with --threads 1 on a busy machine)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared-data", default="../shared/data", help="unused: the graphs are generated")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = ap.parse_args()

    meter = Meter(CLOCKS[args.clock], args.seconds)
    configure_cpu(args.threads)
    torch.manual_seed(args.seed)
    nodes, vocab = SPACES[args.space]
    make = enas_like if args.space == "enas" else nb101_like
    data = make(np.random.default_rng(args.seed), 4096, nodes, vocab)
    batches = [args.batch_size] if args.batch_size else [32, 128]
    result: dict[str, object] = {
        "space": args.space,
        "threads": args.threads,
        "precision": args.precision,
        "clock": args.clock,
        "torch": torch.__version__,
    }
    tag = f"{args.space} {args.precision}"
    train = {}
    with bf16_matmuls(enabled=args.precision == "bf16"):
        for b in batches:
            best, median = train_rate(meter, SVGe(ModelConfig(vocab_size=vocab, max_nodes=nodes)), data, b)
            train[str(b)] = {"best": round(best, 1), "median": round(median, 1)}
            print(f"train  {tag} batch {b:4d}: {best:8.1f} graphs/s (median {median:.1f})", flush=True)
        best, median, mean_nodes = decode_rate(meter, SVGe(ModelConfig(vocab_size=vocab, max_nodes=nodes)), 128)
    print(
        f"decode {tag} batch  128: {best:8.1f} graphs/s (median {median:.1f}, greedy, {mean_nodes:.1f} nodes/graph)",
        flush=True,
    )
    result.update(
        train_graphs_per_s=train[str(batches[0])]["best"],
        train_batch_size=batches[0],
        train_by_batch=train,
        decode_graphs_per_s=round(best, 1),
        decode_median_graphs_per_s=round(median, 1),
        decode_batch_size=128,
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
