"""The performance regressor of Sec. IV-C: an MLP from a latent point to one score."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

#: prefix of the regressor's tensors inside a fine-tuned checkpoint's state arrays
STATE_PREFIX = "regressor."


def default_hidden(in_dim: int, layers: int = 4) -> tuple[int, ...]:
    """Hidden widths halving from the input, as in the authors' code: 56 -> 28 -> 14 -> 7 (-> 1)."""
    return tuple(max(in_dim // 2**k, 1) for k in range(1, layers))


class Regressor(nn.Module):
    """Linear layers with ReLU between them and a linear output; no activation on the score."""

    def __init__(self, in_dim: int, hidden: Sequence[int] | None = None) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.hidden = tuple(int(h) for h in (default_hidden(in_dim) if hidden is None else hidden))
        if self.in_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError("regressor widths must be positive")
        widths = (self.in_dim, *self.hidden, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, z: Tensor) -> Tensor:
        """Scores (B,) of latent points (B, in_dim)."""
        for layer in self.layers[:-1]:
            z = torch.relu(layer(z))
        return self.layers[-1](z).squeeze(-1)

    def config(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "hidden": list(self.hidden)}

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> "Regressor":
        return cls(int(data["in_dim"]), [int(h) for h in data["hidden"]])
