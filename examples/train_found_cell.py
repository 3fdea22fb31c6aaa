#!/usr/bin/env python3
"""Build the network of a cell svge found and train it for a few steps with plain PyTorch.

    python examples/train_found_cell.py                         # NB201's best cell, random images
    python examples/train_found_cell.py --data cifar-10-batches-py --steps 200
    svge bo --space nb201 ... > best.txt && python examples/train_found_cell.py --cell "$(cat best.txt)"

`svge_cli.networks.build(arch, space)` returns an ordinary `torch.nn.Module`
(the benchmark's network for that cell, logits out), so anything PyTorch offers
works on it; `svge train-cell` is the full, checkpointed version of this loop.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from svge_cli.networks import build, count_params
from svge_cli.storage.archtext import read_archs

#: the NAS-Bench-201 cell with the best CIFAR-10 validation accuracy (91.61%; 94.37% test after 200 epochs)
BEST_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def batches(data: str | None, batch_size: int, seed: int):
    """Endless (images, labels) batches: CIFAR-10 from a local folder, or seeded noise."""
    gen = torch.Generator().manual_seed(seed)
    if data is None:
        while True:
            yield torch.randn(batch_size, 3, 32, 32, generator=gen), torch.randint(0, 10, (batch_size,), generator=gen)
    from svge_cli.networks.cifar import load_cifar, to_tensor

    cifar = load_cifar(data)
    x, y = to_tensor(cifar.train_x), torch.from_numpy(cifar.train_y)
    while True:
        for rows in torch.randperm(len(x), generator=gen).split(batch_size):
            yield x[rows], y[rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default=BEST_NB201, help="a cell as text (any space svge reads)")
    parser.add_argument("--data", default=None, help="CIFAR-10 python batches folder (default: random images)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    record = read_archs([args.cell], None, "--cell")[0]
    model = build(record.arch, record.space)
    print(f"{record.space.name} network: {count_params(model):,} parameters")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    for step, (x, y) in zip(range(1, args.steps + 1), batches(args.data, args.batch_size, args.seed)):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 5 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
