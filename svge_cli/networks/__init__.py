"""Cells as trainable networks: one builder per search space, counts, zero-cost proxies, training.

``build(arch, space)`` returns the ``torch.nn.Module`` the space's benchmark
trained for that cell (NAS-Bench-101's 3 x 3-cell network, NAS-Bench-201's
``TinyNetwork``, the ENAS macro network D-VAE trains); the output is logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from svge_cli.arch import Arch, ArchError
from svge_cli.networks.enas import EnasNetwork
from svge_cli.networks.nb101 import NB101Network
from svge_cli.networks.nb201 import NB201Network
from svge_cli.spaces import SPACES, SearchSpace

#: space name -> network class; each takes (arch, num_classes, **options)
BUILDERS: dict[str, Callable[..., nn.Module]] = {"nb101": NB101Network, "nb201": NB201Network, "enas": EnasNetwork}
#: the input every benchmark trains on: CIFAR-10 images
INPUT_SHAPE = (3, 32, 32)


def infer_space(arch: Arch) -> str:
    """The one space whose rules `arch` meets (node limits lifted); ArchError when none or several do."""
    hits = [
        name
        for name, sp in SPACES.items()
        if name in BUILDERS and sp.validate(sp.canonical(arch), node_limit=max(arch.n_nodes, sp.max_nodes)) is None
    ]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ArchError("the cell is valid in no search space with a network builder; pass the space")
    raise ArchError(f"the cell is valid in {' and '.join(hits)}; pass the space")


def build(arch: Arch, space: str | SearchSpace | None = None, num_classes: int = 10, **options: Any) -> nn.Module:
    """The benchmark network of `arch` in `space` (a name or a space; inferred when None).

    `options` go to the space's network (e.g. ``out_filters`` for ENAS,
    ``stem_channels`` for NB101, ``channels`` / ``n`` for NB201).

    Args:
        arch: the cell the network is built around.
        space: the search space, by name or as a space object; None infers the one space whose rules
            the cell meets (ArchError when none or several do).
        num_classes: outputs of the network's final layer.
        **options: builder settings that override the benchmark's defaults for the space's network.

    Returns:
        A freshly initialised module that maps (B, 3, H, W) images to (B, num_classes) logits.
    """
    name = infer_space(arch) if space is None else (space if isinstance(space, str) else space.name)
    if name not in BUILDERS:
        raise ArchError(f"no network builder for space {name!r} (known: {', '.join(BUILDERS)})")
    return BUILDERS[name](arch, num_classes=num_classes, **options)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (what the benchmarks publish; running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def params_of(arch: Arch, space: str | SearchSpace | None = None, num_classes: int = 10, **options: Any) -> int:
    """Parameter count of a cell's network, built on the meta device (no memory, no initialisation).

    Args:
        arch: the cell whose network is counted.
        space: the search space, by name or as a space object; None infers it from the cell.
        num_classes: outputs of the final layer, whose weights are counted too.
        **options: builder settings, as for `build`.

    Returns:
        The number of trainable parameters (batch-norm running statistics are not counted).
    """
    with torch.device("meta"):
        return count_params(build(arch, space, num_classes, **options))


__all__ = [
    "BUILDERS",
    "INPUT_SHAPE",
    "EnasNetwork",
    "NB101Network",
    "NB201Network",
    "build",
    "count_params",
    "infer_space",
    "params_of",
]
