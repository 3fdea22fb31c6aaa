"""The ENAS macro network for a fixed architecture (Pham et al. 2018), as D-VAE trains found cells.

Facts reproduced (read from ENAS's ``general_child.py`` in the copy D-VAE ships,
and D-VAE's ``custom_cifar10_macro_final_{6,12}.sh``; rewritten here):

* stem: 3x3 convolution (no bias) from 3 to F channels and batch norm (no ReLU);
  F = 96 in D-VAE's final training (``child_out_filters``);
* layer l reads the previous layer's output and applies its op: the four
  convolution ops are ReLU-conv1x1-BN then ReLU-convKxK-BN (K = 3 for ops 0/1,
  5 for ops 2/3).  With a fixed architecture ENAS builds the "separable" ops 1
  and 3 exactly like the plain ones (the fixed-arc branch has no separable
  code), and so does this builder; ops 4/5 are 3x3 average / max pooling of
  stride 1 (average without the padding);
* every layer but the first then concatenates the outputs of the layers its
  skip bits select (bit j = DAG node j, node 0 being the stem) with its own
  output, and applies ReLU, a 1x1 convolution back to F channels and batch norm;
* after layers L//3 - 1 and 2L//3 - 1, F doubles and every output kept so far
  (stem included) is reduced by ENAS's factorized reduction (two 1x1 convs of
  stride 2 on the input and on the input shifted by one pixel, F/2 channels
  each, concatenated, batch norm);
* global average pooling, dropout (keep 0.5) and a bias-free linear layer.

Convolutions carry no bias; batch norms have scale and shift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces.enas import EnasSpace

OUT_FILTERS = 96
KEEP_PROB = 0.5
KERNELS = {0: 3, 1: 3, 2: 5, 3: 5}


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


def relu_conv_bn(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """ReLU, a bias-free convolution of stride 1 padded to keep the resolution, and batch norm.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: side of the square kernel (odd, so the resolution is kept).

    Returns:
        The three layers as one module.
    """
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), _bn(c_out))


def layer_op(op: int, c_in: int, filters: int) -> nn.Module:
    """The module of ENAS operation `op` for one layer of the macro network.

    Args:
        op: the ENAS op index: 0..3 the convolution ops (kernel 3 for 0/1, 5 for 2/3), 4 average and
            5 max pooling; ArchError for anything else.
        c_in: channels the op reads (used by the convolution ops only).
        filters: channels the convolution ops produce; the pooling ops keep their input's channels.

    Returns:
        ReLU-conv1x1-BN then ReLU-convKxK-BN for a convolution op, else a 3x3 pool of stride 1.
    """
    if op in KERNELS:
        return nn.Sequential(relu_conv_bn(c_in, filters, 1), relu_conv_bn(filters, filters, KERNELS[op]))
    if op == 4:
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if op == 5:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ArchError(f"ENAS op {op} is not one of 0..5")


class FactorizedReduction(nn.Module):
    """Halve the resolution with two offset 1x1 convs of stride 2, F/2 channels each, then BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ArchError("factorized reduction needs an even channel count")
        self.path1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], 1))


def pool_layers(layers: int) -> tuple[int, int]:
    distance = layers // 3
    return distance - 1, 2 * distance - 1


class EnasNetwork(nn.Module):
    """A macro network for a cell of any number of layers (6 in D-VAE's data, 12 or 14 when extrapolating).

    Args:
        arch: the ENAS cell; an `ArchError` says why when it is not a valid one.
        num_classes: width of the classifier's output.
        out_filters: channels of the first layers, doubled at each of the two reductions.
        keep_prob: the probability that dropout keeps a feature before the classifier.
    """

    def __init__(
        self, arch: Arch, num_classes: int = 10, out_filters: int = OUT_FILTERS, keep_prob: float = KEEP_PROB
    ) -> None:
        super().__init__()
        space = EnasSpace()
        reason = space.validate(arch, node_limit=arch.n_nodes)
        if reason is not None:
            raise ArchError(reason)
        self.row = space.to_row(arch)
        n_layers = len(self.row)
        self.pool_at = set(pool_layers(n_layers))
        filters = out_filters
        self.stem = nn.Sequential(nn.Conv2d(3, filters, 3, padding=1, bias=False), _bn(filters))
        self.ops = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.skip_sources: list[list[int]] = []
        self.reductions = nn.ModuleDict()
        kept = 1  # outputs kept so far (stem included)
        for layer, entry in enumerate(self.row):
            op, bits = entry[0], entry[1:]
            self.ops.append(layer_op(op, filters, filters))
            sources = [j for j, b in enumerate(bits) if b]
            self.skip_sources.append(sources)
            self.skips.append(relu_conv_bn((len(sources) + 1) * filters, filters, 1) if layer > 0 else nn.Identity())
            kept += 1
            if layer in self.pool_at:
                self.reductions[str(layer)] = nn.ModuleList(
                    [FactorizedReduction(filters, filters * 2) for _ in range(kept)]
                )
                filters *= 2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(1 - keep_prob)
        self.classifier = nn.Linear(filters, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.stem(x)]
        for layer in range(len(self.row)):
            out = self.ops[layer](outputs[-1])
            if layer > 0:
                out = self.skips[layer](torch.cat([outputs[j] for j in self.skip_sources[layer]] + [out], 1))
            outputs.append(out)
            if layer in self.pool_at:
                outputs = [reduce(t) for reduce, t in zip(self.reductions[str(layer)], outputs)]
        x = self.dropout(torch.flatten(self.pool(outputs[-1]), 1))
        return self.classifier(x)
