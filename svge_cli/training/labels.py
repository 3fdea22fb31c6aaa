"""The labelled cells of `svge finetune`: its settings, and the seeded draw of fitted, validation and unseen rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from svge_cli.errors import SvgeError
from svge_cli.model.scaling import LABEL_TRANSFORMS

MIN_LABELS = 10
POOLS = ("all", "train")
HEADS = ("gp", "mlp")


@dataclass(frozen=True)
class FinetuneConfig:
    """Optimisation settings of the joint training (svge_cli.training.finetune's docstring gives the defaults)."""

    head: str = "gp"  # "gp": exact GP on the frozen VAE's latent means (+ one-hot cells); "mlp": joint training
    onehot: bool = True  # the GP head also reads the one-hot cell (ops + adjacency) beside the latent mean
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    regression_share: float = 0.9
    validation_share: float = 0.1
    patience: int = 20
    seed: int = 0
    hidden: tuple[int, ...] | None = None  # regressor widths; None = halving from the latent size
    ranking_weight: float = 0.0  # weight of the pairwise logistic ranking loss beside the MSE
    label_transform: str = "rank-gauss"  # "rank-gauss": labels through their empirical CDF onto a normal
    heads: int = 1  # regressors on the shared encoder; more than one gives a spread as uncertainty
    proxies: tuple[str, ...] = ()  # zero-cost proxies the GP head reads beside the latent mean (gp only)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or not self.lr > 0:
            raise ValueError("epochs, batch_size and patience >= 1 and lr > 0 are required")
        if not 0 <= self.regression_share <= 1:
            raise ValueError("regression_share must lie in [0, 1]")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}")
        if self.label_transform not in LABEL_TRANSFORMS:
            raise ValueError(f"label_transform must be one of {', '.join(LABEL_TRANSFORMS)}")
        if self.heads < 1:
            raise ValueError("heads must be >= 1")
        if not self.ranking_weight >= 0:
            raise ValueError("ranking_weight must be >= 0")
        if not 0 < self.validation_share < 1:
            raise ValueError("validation_share must lie strictly between 0 and 1")
        if self.proxies and self.head != "gp":
            raise ValueError("proxies are features of the GP head: use head 'gp', or no proxies")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LabelDraw:
    """Rows of the labelled dataset: fitted on, validated on, and never seen."""

    train: np.ndarray
    validation: np.ndarray
    unseen: np.ndarray  # every other row with a known label: the evaluation cells
    skipped_nan: int = 0  # rows of the pool passed over because their label is NaN

    @property
    def drawn(self) -> np.ndarray:
        return np.sort(np.concatenate([self.train, self.validation]))


def minimum_labels(batch_size: int) -> int:
    return max(MIN_LABELS, batch_size)


def draw_labels(values: np.ndarray, n: int, cfg: FinetuneConfig, pool: np.ndarray | None = None) -> LabelDraw:
    """Draw `n` rows with a known label from `pool` (default: all rows), seeded by cfg.seed.

    Args:
        values: the label of every row, (M,), NaN where unknown.
        n: how many labelled rows to draw, fitted and validation rows together.
        cfg: the settings: seed of the draw, validation share, and the batch size that sets the minimum n.
        pool: the rows that may be drawn; None allows every row.

    Returns:
        The drawn rows split into fitted and validation rows (at least one), sorted; every other row
        with a known label as unseen; and how many rows of the pool were skipped for a NaN label.
    """
    need = minimum_labels(cfg.batch_size)
    if n < need:
        raise SvgeError(
            f"--labels {n} is too few: fine-tuning needs at least {need} labelled cells "
            f"(at least {MIN_LABELS}, and one batch of {cfg.batch_size}; lower --batch-size for fewer)"
        )
    pool = np.arange(len(values)) if pool is None else np.asarray(pool, dtype=np.int64)
    known = pool[np.isfinite(values[pool])]
    if n > len(known):
        raise SvgeError(
            f"--labels {n} asks for more cells than have a label: {len(known):,} of the "
            f"{len(pool):,} cells to draw from have one"
        )
    drawn = np.random.default_rng(cfg.seed).choice(known, size=n, replace=False)
    n_val = max(1, int(round(n * cfg.validation_share)))
    unseen = np.setdiff1d(np.flatnonzero(np.isfinite(values)), drawn)
    return LabelDraw(np.sort(drawn[n_val:]), np.sort(drawn[:n_val]), unseen, int(len(pool) - len(known)))
