"""Random search, the baseline every search is measured against: distinct cells drawn uniformly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from svge_cli.search.registry import SearchContext, register
from svge_cli.search.strategies import DEFAULT_BATCH, History, SearchError, Strategy, unqueried


class RandomPool:
    """Uniform draws without replacement from a pool of `size` cells (candidates: indices)."""

    name = "random"

    def __init__(self, size: int) -> None:
        if size < 1:
            raise SearchError("the pool is empty")
        self.size = size

    def key(self, candidate: int) -> int:
        return int(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Any] = ()
    ) -> list[int]:
        """Up to `n` distinct pool rows drawn uniformly among those neither queried nor pending.

        Args:
            history: every query of this trial so far (candidates are pool rows).
            n: how many rows to draw; fewer when fewer are left.
            limit: the budget left; unused, since `n` never exceeds it here.
            rng: the generator the rows are drawn with.
            pending: pool rows being evaluated now, never drawn.

        Returns:
            The drawn pool rows, in draw order.
        """
        free = unqueried(self.size, history, pending)
        return [int(i) for i in rng.choice(free, size=min(n, len(free)), replace=False)]


class RandomSpace:
    """Uniform cells of a space that cannot be enumerated (candidates: canonical `Arch`)."""

    name = "random"

    def __init__(self, space: Any, tries: int = 100) -> None:
        self.space, self.tries = space, tries

    def key(self, candidate: Any) -> str:
        return self.space.hash(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Any] = ()
    ) -> list[Any]:
        """Up to `n` valid canonical cells from the space's sampler, none queried, pending or repeated.

        Args:
            history: every query of this trial so far, checked by cell hash.
            n: how many cells to return; each of the `tries` attempts samples this many.
            limit: the budget left; unused, since `n` never exceeds it here.
            rng: seeds each attempt of the space's sampler.
            pending: cells being evaluated now, never proposed again.

        Returns:
            The new cells in the order found; fewer than `n` when `tries` attempts did not find enough.
        """
        out, keys = [], {self.key(c) for c in pending}
        for _ in range(self.tries):
            for arch in self.space.sample(n, int(rng.integers(2**31))):
                arch = self.space.canonical(arch)
                k = self.space.hash(arch)
                if self.space.validate(arch) is None and k not in keys and not history.seen(k):
                    out.append(arch)
                    keys.add(k)
                    if len(out) == n:
                        return out
        return out


@register("random", "uniformly drawn distinct cells (the baseline)", DEFAULT_BATCH, rank=3)
def build_random(ctx: SearchContext, req: Any) -> Callable[[int], Strategy]:
    """Rows of the enumeration where the space can be listed, else the space's sampler."""
    if ctx.pool is not None:
        size = len(ctx.pool)
        return lambda seed: RandomPool(size)
    return lambda seed: RandomSpace(ctx.space)
