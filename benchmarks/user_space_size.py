"""What a user space's `max_nodes` costs: sampling, one training step and a greedy decode, per size.

    python benchmarks/user_space_size.py [--sizes 8,16,32,64] [--cells 32] [--ops 3] [--json]

For each size N a user space of --ops operations and at most N nodes is declared, --cells
distinct cells are sampled (all have N nodes: the sampler weighs sizes by how many labelled
DAGs they allow), and the default SVGe model (hidden 125, latent 56) takes one training step
on them and decodes 8 latent points greedily. The figures back the bound on `max_nodes` in
docs/spaces.md (svge_cli.spaces.custom.MAX_NODES). One torch thread.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from svge_cli.arch import pad_batch
from svge_cli.model import ModelConfig, SVGe, codec
from svge_cli.spaces.custom import from_spec


def measure(nodes: int, cells: int, ops: int) -> dict[str, float]:
    sp = from_spec({"name": "size", "ops": [f"op{i}" for i in range(ops)], "max_nodes": nodes}, "benchmark")
    start = time.perf_counter()
    archs = sp.sample(cells, seed=0)
    sampled = time.perf_counter() - start
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=nodes)).train()
    ops_a, adj, n = pad_batch(archs, nodes)
    start = time.perf_counter()
    model.loss(ops_a, adj, n)["total"].backward()
    step = time.perf_counter() - start
    mu, _ = codec.encode_arrays(model.eval(), ops_a, adj, n)
    start = time.perf_counter()
    codec.decode_latents(model, sp, mu[:8])
    decode = time.perf_counter() - start
    return {"nodes": nodes, "sample_s": sampled, "train_step_s": step, "decode8_s": decode, "cells": len(archs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16,32,64")
    parser.add_argument("--cells", type=int, default=32)
    parser.add_argument("--ops", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(int(s), args.cells, args.ops) for s in args.sizes.split(",")]
    for r in rows:
        print(
            f"{r['nodes']:>4} nodes: sample {r['cells']} cells {r['sample_s']:.2f} s, "
            f"train step {r['train_step_s']:.2f} s, greedy decode of 8 {r['decode8_s']:.2f} s"
        )
    if args.json:
        print(json.dumps({"cells": args.cells, "ops": args.ops, "rows": rows}))


if __name__ == "__main__":
    main()
