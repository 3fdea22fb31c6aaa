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


class RegressorEnsemble(nn.Module):
    """A few regressors of the same widths, each from its own initialisation, reading the same latent point.

    The score is the heads' mean; their standard deviation (`spread`) is the
    uncertainty `svge predict` reports.  Its tensors sit under ``heads.<i>.`` and its
    config adds ``"heads": K``; a config without that key is one plain Regressor.

    Args:
        in_dim: features of the latent point each head reads.
        hidden: widths of the hidden layers, shared by every head; None takes Regressor's default.
        heads: K, the number of regressors (at least 1).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] | None = None, heads: int = 5) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError("an ensemble needs at least one head")
        self.heads = nn.ModuleList(Regressor(in_dim, hidden) for _ in range(int(heads)))
        self.in_dim, self.hidden = self.heads[0].in_dim, self.heads[0].hidden

    def each(self, z: Tensor) -> Tensor:
        """Scores of every head, (K, B)."""
        return torch.stack([h(z) for h in self.heads])

    def forward(self, z: Tensor) -> Tensor:
        return self.each(z).mean(0)

    def spread(self, z: Tensor) -> Tensor:
        """Standard deviation of the heads' scores, (B,); zero for a single head."""
        s = self.each(z)
        return s.std(0, unbiased=False)

    def config(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "heads": len(self.heads)}


def head_from_config(data: dict[str, Any]) -> nn.Module:
    """The head a checkpoint's ``config["regressor"]`` describes (no "kind" / "heads" key: one Regressor, as before)."""
    if data.get("kind") == "gp":
        from svge_cli.model.gphead import GPHead

        return GPHead.from_config(data)
    if "heads" not in data:
        return Regressor.from_config(data)
    return RegressorEnsemble(int(data["in_dim"]), [int(h) for h in data["hidden"]], int(data["heads"]))


def make_head(in_dim: int, hidden: Sequence[int] | None, heads: int) -> Regressor | RegressorEnsemble:
    """One Regressor for heads == 1 (the original checkpoint layout), else an ensemble.

    Args:
        in_dim: width of the head's input (latent dimensions plus any feature columns).
        hidden: hidden layer widths; None halves from `in_dim` as `default_hidden` does.
        heads: number of independently initialised regressors; at least 1.

    Returns:
        The untrained head.
    """
    return Regressor(in_dim, hidden) if heads == 1 else RegressorEnsemble(in_dim, hidden, heads)
