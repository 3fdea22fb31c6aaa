"""The one optimisation config of VAE training and fine-tuning (torch-free: spaces carry defaults)."""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("constant", "plateau", "cosine")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the paper's (Adam, lr 1e-4, 300 epochs).

    ``lr_schedule``: "plateau" divides the rate by 10 after 10 epochs without a
    better training loss (the authors' ReduceLROnPlateau), "cosine" anneals it to
    zero over ``epochs``, "constant" keeps it.  ``grad_clip`` > 0 clips the global
    gradient norm.  ``eval_every`` epochs (and after the last one) the greedy
    reconstruction accuracy of the test graphs is added to the history.
    ``warmup_steps`` > 0 ramps the rate linearly from zero over the first steps:
    fresh Adam moments move every weight by about the full rate at once, which
    throws a model started from trained weights (``--init-from``) far back.
    ``precision="bf16"`` runs the model's matmuls on bfloat16 inputs (fp32
    weights, accumulation and element-wise work; see `bf16_matmuls`): faster on
    CPUs with AVX512-BF16, with rounding the paper's fp32 runs did not have.
    """

    epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    seed: int = 0
    eval_every: int = 10
    lr_schedule: str = "plateau"
    grad_clip: float = 0.0
    precision: str = "fp32"
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, not {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.eval_every < 1 or not self.lr > 0 or self.warmup_steps < 0:
            raise ValueError("epochs >= 0, batch_size >= 1, eval_every >= 1, lr > 0 and warmup_steps >= 0 are required")


#: a first run on a 2-core CPU: measured on an idle machine, ENAS reaches 99.6% greedy test
#: reconstruction at epoch 9 (8.5 min) and NB201 99.9% at epoch 9 (6.4 min); docs/results.md
LAPTOP = TrainConfig(epochs=10, batch_size=32, lr=1e-3, eval_every=5, lr_schedule="cosine", grad_clip=1.0)


def paper_config(batch_size: int) -> TrainConfig:
    """The paper's schedule (Sec. IV; the authors' code): Adam at lr 1e-4 reduced on plateau, 300 epochs."""
    return TrainConfig(epochs=300, batch_size=batch_size, lr=1e-4, eval_every=10, lr_schedule="plateau")
