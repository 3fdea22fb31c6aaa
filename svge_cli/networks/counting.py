"""Parameters and multiply-adds of a cell's network, counted from its structure (no tensors).

Building a network costs tens of milliseconds (every layer allocates and
initialises its weights); counting the same layers from the cell takes tens of
microseconds, which is what checking all 15,625 NAS-Bench-201 cells needs.
The walk mirrors the builders layer by layer, and the tests check that it
agrees with the built modules.

Multiply-adds count convolutions and linear layers (one per weight use at each
output position); batch norm, pooling, ReLU and additions are not counted, as
in NAS-Bench-201's FLOPs and most NAS papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from svge_cli.arch import Arch, ArchError
from svge_cli.networks import enas as enas_net
from svge_cli.networks import nb101 as nb101_net
from svge_cli.networks import nb201 as nb201_net
from svge_cli.spaces import SearchSpace
from svge_cli.spaces.enas import EnasSpace
from svge_cli.spaces.nb101_hash import FIRST_OP, prune
from svge_cli.spaces.nb101_hash import OPS as NB101_OPS
from svge_cli.spaces.nb201 import EDGES, OP_OFFSET, NB201Space
from svge_cli.spaces.nb201 import OPS as NB201_OPS


@dataclass
class Counts:
    params: int = 0
    macs: int = 0

    def conv(self, c_in: int, c_out: int, kernel: int, out_hw: int, bias: bool = False) -> None:
        """Add one convolution: its weights and its multiply-adds over a square output map.

        Args:
            c_in: input channels.
            c_out: output channels.
            kernel: side of the square kernel.
            out_hw: side of the square output map, in pixels; the multiply-adds grow with its square.
            bias: whether the convolution has a bias, which adds `c_out` parameters and no multiply-adds.
        """
        self.params += c_in * c_out * kernel * kernel + (c_out if bias else 0)
        self.macs += c_in * c_out * kernel * kernel * out_hw * out_hw

    def bn(self, c: int) -> None:
        self.params += 2 * c

    def linear(self, c_in: int, c_out: int, bias: bool = True) -> None:
        """Add one dense layer: its weights, its bias if any, and one multiply-add per weight.

        Args:
            c_in: input features.
            c_out: output features.
            bias: whether the layer has a bias, which adds `c_out` parameters.
        """
        self.params += c_in * c_out + (c_out if bias else 0)
        self.macs += c_in * c_out


def nb101_counts(
    arch: Arch, num_classes: int = 10, size: int = 32, stem_channels: int = nb101_net.STEM_CHANNELS
) -> Counts:
    """Parameters and multiply-adds of a cell's NAS-Bench-101 network, layer by layer as `NB101Network`.

    Args:
        arch: the cell; it is pruned first, and ArchError is raised when the input does not reach the
            output or an interior node is not a NAS-Bench-101 operation.
        num_classes: outputs of the final dense layer.
        size: side of the square input images, in pixels.
        stem_channels: channels of the stem and of the first stack (doubled at each later stack).

    Returns:
        The counts of the whole network.
    """
    pruned = prune(arch)
    if pruned is None:
        raise ArchError("the input does not reach the output")
    types = pruned.ops.tolist()
    if any(not FIRST_OP <= t < FIRST_OP + len(NB101_OPS) for t in types[1:-1]):
        raise ArchError("a middle node is not a NAS-Bench-101 operation")
    adj, n = pruned.adj, pruned.n_nodes
    c = Counts()
    c.conv(3, stem_channels, 3, size)
    c.bn(stem_channels)
    channels, hw = stem_channels, size
    for stack in range(nb101_net.STACKS):
        c_in = channels
        if stack > 0:
            channels, hw = channels * 2, math.ceil(hw / 2)
        for _ in range(nb101_net.CELLS_PER_STACK):
            width = nb101_net.vertex_channels(c_in, channels, adj)
            for v in range(1, n - 1):
                if adj[0, v]:
                    c.conv(c_in, width[v], 1, hw)
                    c.bn(width[v])
                op = NB101_OPS[types[v] - FIRST_OP]
                if op != "maxpool3x3":
                    c.conv(width[v], width[v], 3 if op == "conv3x3-bn-relu" else 1, hw)
                    c.bn(width[v])
            if adj[0, n - 1]:
                c.conv(c_in, channels, 1, hw)
                c.bn(channels)
            c_in = channels
    c.linear(channels, num_classes)
    return c


def nb201_counts(
    arch: Arch, num_classes: int = 10, size: int = 32, channels: int = nb201_net.C, n: int = nb201_net.N
) -> Counts:
    """Parameters and multiply-adds of a cell's NAS-Bench-201 network, layer by layer as `NB201Network`.

    Args:
        arch: the cell; ArchError when it is not a valid NAS-Bench-201 cell.
        num_classes: outputs of the final linear layer.
        size: side of the square input images, in pixels.
        channels: channels of the stem and the first stage (doubled by each of the two reductions).
        n: cells per stage.

    Returns:
        The counts of the whole network.
    """
    reason = NB201Space().validate(arch)
    if reason is not None:
        raise ArchError(reason)
    ops = [NB201_OPS[int(t) - OP_OFFSET] for t in arch.ops[1:-1]]
    assert len(ops) == len(EDGES)
    c = Counts()
    c.conv(3, channels, 3, size)
    c.bn(channels)
    width, hw = channels, size
    for stage in range(3):
        if stage > 0:
            out_hw = (hw - 1) // 2 + 1
            c.conv(width, width * 2, 3, out_hw)
            c.bn(width * 2)
            c.conv(width * 2, width * 2, 3, out_hw)
            c.bn(width * 2)
            c.conv(width, width * 2, 1, hw // 2)
            width, hw = width * 2, out_hw
        for _ in range(n):
            for op in ops:
                if op in ("nor_conv_1x1", "nor_conv_3x3"):
                    c.conv(width, width, 1 if op == "nor_conv_1x1" else 3, hw)
                    c.bn(width)
    c.bn(width)
    c.linear(width, num_classes)
    return c


def enas_counts(arch: Arch, num_classes: int = 10, size: int = 32, out_filters: int = enas_net.OUT_FILTERS) -> Counts:
    """Parameters and multiply-adds of a cell's ENAS macro network, layer by layer as `EnasNetwork`.

    Args:
        arch: the cell, one node per layer and of any length; ArchError when it breaks ENAS's rules.
        num_classes: outputs of the final bias-free linear layer.
        size: side of the square input images, in pixels.
        out_filters: channels of the stem and of the layers before the first reduction (doubled by each
            of the two).

    Returns:
        The counts of the whole network.
    """
    space = EnasSpace()
    reason = space.validate(arch, node_limit=arch.n_nodes)
    if reason is not None:
        raise ArchError(reason)
    row = space.to_row(arch)
    pool_at = enas_net.pool_layers(len(row))
    c = Counts()
    f, hw = out_filters, size
    c.conv(3, f, 3, hw)
    c.bn(f)
    kept = 1
    for layer, entry in enumerate(row):
        op, bits = entry[0], entry[1:]
        if op in enas_net.KERNELS:
            c.conv(f, f, 1, hw)
            c.bn(f)
            c.conv(f, f, enas_net.KERNELS[op], hw)
            c.bn(f)
        if layer > 0:
            c.conv((sum(bits) + 1) * f, f, 1, hw)
            c.bn(f)
        kept += 1
        if layer in pool_at:
            out_hw = (hw - 1) // 2 + 1
            for _ in range(kept):
                c.conv(f, f, 1, out_hw)
                c.conv(f, f, 1, out_hw)
                c.bn(2 * f)
            f, hw = 2 * f, out_hw
    c.linear(f, num_classes, bias=False)
    return c


COUNTERS = {"nb101": nb101_counts, "nb201": nb201_counts, "enas": enas_counts}


def counts(arch: Arch, space: str | SearchSpace, num_classes: int = 10, size: int = 32, **options) -> Counts:
    """Parameters and multiply-adds of the network of `arch` for `size` x `size` RGB inputs.

    Args:
        arch: the cell whose network is counted.
        space: the search space, by name or as a space object; ArchError when it has no counter.
        num_classes: outputs of the network's final layer.
        size: side of the square inputs, in pixels.
        **options: builder settings of the space's network (e.g. ``channels`` and ``n`` for NB201).

    Returns:
        The parameters and multiply-adds (convolutions and linear layers only) of the network.
    """
    name = space if isinstance(space, str) else space.name
    if name not in COUNTERS:
        raise ArchError(f"no network builder for space {name!r} (known: {', '.join(COUNTERS)})")
    return COUNTERS[name](arch, num_classes=num_classes, size=size, **options)
