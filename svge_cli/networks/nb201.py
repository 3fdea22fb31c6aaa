"""The NAS-Bench-201 cell network (Dong & Yang 2020, ``TinyNetwork`` with ``InferCell``).

Facts reproduced (read from D-X-Y/AutoDL-Projects, rewritten here):

* stem: 3x3 convolution (no bias) from 3 to C = 16 channels and batch norm;
* three stages of N = 5 cells at C, 2C and 4C channels, joined by residual
  reduction blocks (ReLU-conv3x3 stride 2-BN, ReLU-conv3x3-BN, and a shortcut
  of 2x2 average pooling and a bias-free 1x1 convolution);
* a cell has 4 nodes; node j is the sum over i < j of op(i -> j)(node i);
  ``nor_conv_kxk`` is ReLU-conv (no bias)-BN, ``avg_pool_3x3`` is a 3x3 average
  pool of stride 1 that leaves padding out of the mean, ``skip_connect`` the
  identity and ``none`` a zero tensor;
* every batch norm is affine and tracks running statistics;
* after the last cell: batch norm, ReLU, global average pooling, linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces.nb201 import EDGES, OP_OFFSET, OPS, NB201Space

C = 16
N = 5


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """ReLU, a bias-free convolution padded by half its kernel, and batch norm.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: side of the square kernel (odd, so stride 1 keeps the resolution).
        stride: stride of the convolution; 2 halves the resolution.

    Returns:
        The three layers as one module.
    """
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)
    )


class Zero(nn.Module):
    """The ``none`` op; the cell skips it, so this only stands in the module list."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _edge_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return relu_conv_bn(channels, channels, 1)
    if name == "nor_conv_3x3":
        return relu_conv_bn(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchError(f"{name!r} is not a NAS-Bench-201 operation")


class Cell(nn.Module):
    """Four nodes, six edges; a ``none`` edge adds nothing (the original adds x * 0)."""

    def __init__(self, edge_ops: list[str], channels: int) -> None:
        super().__init__()
        self.edge_ops = list(edge_ops)
        self.edges = nn.ModuleList([_edge_op(op, channels) for op in edge_ops])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for dst in (1, 2, 3):
            total = None
            for k, (src, to) in enumerate(EDGES):
                if to != dst or self.edge_ops[k] == "none":
                    continue
                term = self.edges[k](nodes[src])
                total = term if total is None else total + term
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(c_in, c_out, 3, stride=2)
        self.conv_b = relu_conv_bn(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, 3 stages of `n` cells with residual reductions, BN-ReLU, global pool, linear layer.

    Args:
        arch: the NAS-Bench-201 cell; an `ArchError` says why when it is not a valid one.
        num_classes: width of the linear layer's output.
        channels: channels of the stem and the first stage, doubled at each residual reduction.
        n: the number of cells in each stage.
    """

    def __init__(self, arch: Arch, num_classes: int = 10, channels: int = C, n: int = N) -> None:
        super().__init__()
        reason = NB201Space().validate(arch)
        if reason is not None:
            raise ArchError(reason)
        self.edge_ops = [OPS[int(t) - OP_OFFSET] for t in arch.ops[1:-1]]
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(Cell(self.edge_ops, width) for _ in range(n))
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
