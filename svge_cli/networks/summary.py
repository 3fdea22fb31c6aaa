"""A layer-by-layer table of a built network: output shape, parameters and multiply-adds per layer.

The network runs once on the meta device (shapes only, no arithmetic), so a
summary of an NB101 network takes milliseconds whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    macs: int


def layer_summary(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> list[LayerRow]:
    """Every leaf module that runs, in call order; the model is moved to the meta device (pass a copy)."""
    model = model.to("meta")
    rows: list[LayerRow] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs, output) -> None:
        if not isinstance(output, torch.Tensor):
            return
        shape = tuple(output.shape[1:])
        macs = 0
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs = output[0].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(names[module], type(module).__name__, shape, params, macs))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.empty((1, *input_shape), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return rows
