"""The model's hyper-parameters, stored as JSON inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

DECODERS = ("svge", "dgmg")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and loss weights of SVGe; defaults are the paper's (Sec. III, IV).

    ``hidden`` is the size of one message-passing direction, so a node embedding
    has ``2 * hidden`` = 250 entries.  ``decoder="dgmg"`` is the paper's ablation:
    the same encoder with a single, forward-only decoder.  ``train_noise`` scales
    the posterior noise while training (the authors sample z = mu + 0.01 eps std);
    evaluation uses z = mu.
    """

    vocab_size: int
    max_nodes: int
    hidden: int = 125
    latent: int = 56
    rounds: int = 2
    kl_weight: float = 0.005
    decoder: str = "svge"
    train_noise: float = 0.01

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {self.decoder!r}")
        if self.vocab_size < 2:
            raise ValueError("vocab_size must count at least the input and output types")
        if self.max_nodes < 2:
            raise ValueError("max_nodes must be at least 2 (input and output)")
        for name in ("hidden", "latent", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def node_dim(self) -> int:
        """Node embedding size: forward and backward halves side by side."""
        return 2 * self.hidden

    @property
    def directions(self) -> int:
        """Decoding directions: forward and backward for SVGe, forward only for DGMG."""
        return 2 if self.decoder == "svge" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Rebuild from `to_dict` output; unknown keys mean a file from another version."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)
