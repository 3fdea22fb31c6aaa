"""The NAS-Bench-101 training network for any cell (Ying et al. 2019, ``model_builder.py``).

Facts reproduced (read from google-research/nasbench, rewritten here):

* stem: 3x3 convolution to 128 channels, batch norm, ReLU;
* three stacks of three cells; every stack after the first starts with a 2x2
  max-pool of stride 2 and doubles the channel count;
* global average pooling and a dense layer (with bias) to the classes;
* every convolution is bias-free and followed by batch norm (scale and shift)
  and ReLU; ``maxpool3x3`` is a 3x3 max-pool of stride 1 that keeps channels;
* inside a cell, an edge from the cell input always goes through a 1x1
  projection (conv-BN-ReLU) to the channels of the vertex it feeds; edges
  between interior vertices are summed after dropping surplus channels
  (``truncate``); the output concatenates the vertices that feed it and adds a
  projection of the input when the input feeds the output directly;
* channel split (``compute_vertex_channels``): the output channels are divided
  evenly among the vertices feeding the output (the first ones get one extra
  channel for the remainder); every other interior vertex takes the largest
  channel count among its successors.

Nothing here is limited to 7 vertices or 9 edges, so extrapolated cells build too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces.nb101_hash import FIRST_OP, OPS, prune

STEM_CHANNELS = 128
STACKS = 3
CELLS_PER_STACK = 3
BN_MOMENTUM = 1 - 0.997  # TensorFlow's decay 0.997 in torch's convention
BN_EPS = 1e-5


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """A bias-free, resolution-keeping convolution of stride 1, batch norm (TensorFlow's settings), ReLU.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: side of the square kernel (odd, so the resolution is kept).

    Returns:
        The three layers as one module.
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.ReLU(),
    )


def vertex_channels(c_in: int, c_out: int, adj: np.ndarray) -> list[int]:
    """Channels of every vertex of a pruned cell (NAS-Bench-101's split rule).

    Args:
        c_in: channels of the cell input (vertex 0).
        c_out: channels of the cell output (the last vertex), split among the vertices that feed it.
        adj: the (V, V) upper-triangular adjacency matrix of the pruned cell, adj[u, v] set for an
            edge u -> v; ArchError when an interior vertex reaches neither the output nor a feeder.

    Returns:
        V channel counts, one per vertex in order, input and output included.
    """
    n = adj.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if adj[v, n - 1]]
    if not feeders:
        raise ArchError("no interior vertex feeds the output (prune the cell first)")
    share, extra = divmod(c_out, len(feeders))
    for rank, v in enumerate(feeders):
        channels[v] = share + (1 if rank < extra else 0)
    for v in range(n - 3, 0, -1):
        if not adj[v, n - 1]:
            channels[v] = max([channels[w] for w in range(v + 1, n - 1) if adj[v, w]], default=0)
        if channels[v] <= 0:
            raise ArchError(f"vertex {v} reaches neither the output nor a vertex that does")
    return channels


class Cell(nn.Module):
    """One NAS-Bench-101 module: `c_in` channels in, `c_out` out, same resolution.

    Args:
        ops: the operation name of every vertex, "input" first and "output" last.
        adj: the pruned cell's upper-triangular adjacency matrix, (n, n).
        c_in: channels of the module's input.
        c_out: channels of its output, split among the vertices that feed the output.
    """

    def __init__(self, ops: list[str], adj: np.ndarray, c_in: int, c_out: int) -> None:
        super().__init__()
        n = adj.shape[0]
        self.n = n
        self.adj = adj.astype(bool)
        self.channels = vertex_channels(c_in, c_out, adj)
        self.preds = [[u for u in range(1, v) if adj[u, v]] for v in range(n)]
        self.ops = nn.ModuleList([nn.Identity()])
        self.projections = nn.ModuleList([nn.Identity()])
        for v in range(1, n - 1):
            width = self.channels[v]
            self.projections.append(conv_bn_relu(c_in, width, 1) if adj[0, v] else nn.Identity())
            self.ops.append(_op(ops[v], width))
        self.to_output = [v for v in range(1, n - 1) if adj[v, n - 1]]
        self.out_projection = conv_bn_relu(c_in, c_out, 1) if adj[0, n - 1] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor] = [x]
        for v in range(1, self.n - 1):
            width = self.channels[v]
            terms = [values[u][:, :width] for u in self.preds[v]]
            if self.adj[0, v]:
                terms.append(self.projections[v](x))
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            values.append(self.ops[v](total))
        if not self.to_output:
            return self.out_projection(x)
        out = (
            values[self.to_output[0]] if len(self.to_output) == 1 else torch.cat([values[v] for v in self.to_output], 1)
        )
        if self.out_projection is not None:
            out = out + self.out_projection(x)
        return out


def _op(name: str, width: int) -> nn.Module:
    if name == "conv3x3-bn-relu":
        return conv_bn_relu(width, width, 3)
    if name == "conv1x1-bn-relu":
        return conv_bn_relu(width, width, 1)
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ArchError(f"{name!r} is not a NAS-Bench-101 operation")


class NB101Network(nn.Module):
    """Stem, 3 stacks x 3 cells with max-pool downsampling, global pool, dense layer.

    Args:
        arch: the NAS-Bench-101 cell, pruned of vertices off the input-output paths before building.
        num_classes: width of the dense layer's output.
        stem_channels: channels of the stem and the first stack, doubled at each later stack.
        stacks: the number of stacks; every one after the first starts with a max-pool.
        cells_per_stack: the number of modules in each stack.
    """

    def __init__(
        self,
        arch: Arch,
        num_classes: int = 10,
        stem_channels: int = STEM_CHANNELS,
        stacks: int = STACKS,
        cells_per_stack: int = CELLS_PER_STACK,
    ) -> None:
        super().__init__()
        pruned = prune(arch)
        if pruned is None:
            raise ArchError("the input does not reach the output")
        types = pruned.ops.tolist()
        for v, t in enumerate(types[1:-1], start=1):
            if not FIRST_OP <= t < FIRST_OP + len(OPS):
                raise ArchError(f"node {v} has type {t}, not a NAS-Bench-101 operation")
        ops = ["input"] + [OPS[t - FIRST_OP] for t in types[1:-1]] + ["output"]
        self.arch = pruned
        self.stem = conv_bn_relu(3, stem_channels, 3)
        layers: list[nn.Module] = []
        channels = stem_channels
        for stack in range(stacks):
            c_in = channels
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))  # TF "same"
                channels *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(ops, pruned.adj, c_in, channels))
                c_in = channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.classifier(torch.flatten(self.pool(x), 1))
