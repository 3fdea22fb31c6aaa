"""The `Strategy` protocol, the history it reads, and an in-memory loop for benchmarks.

A strategy only proposes; the driver queries.  `run_search` asks the strategy for the next
candidates given everything queried so far, scores them with the objective, and yields one
`Round` per batch, until exactly `budget` queries are spent.  Because a strategy sees only the
history (and an RNG seeded by the run's seed and the history's length), a search resumed from
a saved history proposes what the uninterrupted search would have proposed.

Candidates are pool indices (ints) for pool strategies and `Arch` cells for strategies over a
whole space; each strategy says how it keys them (`key`), and the driver refuses a strategy
that proposes a key already queried, so "never repeats a cell" is enforced in one place.

The strategies themselves register in `registry` from their own modules: `pool_bo`,
`latent`, `random_search`, `evolution`.  `svge bo` runs them on `driver` (workers, journal).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Protocol, Sequence

import numpy as np

from svge_cli.errors import SvgeError

Objective = Callable[[list[Any]], Sequence[float]]


class SearchError(SvgeError, ValueError):
    """A search that cannot run as asked (empty pool, budget larger than the pool, bad strategy)."""


# ---------------------------------------------------------------- history and rounds


@dataclass
class History:
    """Every query in order: the candidate, its key and its score (NaN when the objective failed)."""

    candidates: list[Any] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._seen = set(self.keys)

    def __len__(self) -> int:
        return len(self.candidates)

    def add(self, candidate: Any, key: Hashable, score: float) -> None:
        """Append one query.

        Args:
            candidate: what the strategy proposed (a pool row or an `Arch`).
            key: the candidate's identity (`Strategy.key`); must not have been queried before.
            score: the objective's score; NaN when the evaluation failed.

        Raises:
            SearchError: when `key` is already in the history.
        """
        if key in self._seen:
            raise SearchError(f"candidate {key!r} was already queried")
        self.candidates.append(candidate)
        self.keys.append(key)
        self.scores.append(float(score))
        self._seen.add(key)

    def seen(self, key: Hashable) -> bool:
        return key in self._seen

    def scored(self) -> tuple[list[Any], np.ndarray]:
        """Candidates with a finite score, and those scores."""
        s = np.asarray(self.scores, dtype=np.float64)
        ok = np.isfinite(s)
        return [c for c, good in zip(self.candidates, ok) if good], s[ok]

    def best(self) -> tuple[float, Any]:
        """(best score, its candidate); (-inf, None) before any finite score."""
        s = np.asarray(self.scores, dtype=np.float64)
        if not np.isfinite(s).any():
            return -math.inf, None
        i = int(np.nanargmax(np.where(np.isfinite(s), s, -np.inf)))
        return float(s[i]), self.candidates[i]

    def best_so_far(self) -> np.ndarray:
        """Best finite score after each query (-inf before the first)."""
        s = np.asarray(self.scores, dtype=np.float64)
        return np.maximum.accumulate(np.where(np.isfinite(s), s, -np.inf)) if len(s) else s


@dataclass
class Round:
    """One batch of the search: what was queried, and where the search stands after it."""

    number: int
    candidates: list[Any]
    scores: list[float]
    queries: int  # queries spent so far, this round included
    best_score: float
    best_candidate: Any
    seconds: float  # proposing + scoring this round


class Strategy(Protocol):
    """Proposes unqueried candidates from the history; never queries anything itself."""

    name: str

    def key(self, candidate: Any) -> Hashable:
        """The identity of a candidate: equal keys are the same cell."""

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Any] = ()
    ) -> list[Any]:
        """Between 1 and `limit` candidates never queried and not `pending`, normally `n` of them.

        A strategy may return more than `n` (up to `limit`) for its initial design, so
        that e.g. 10 random initial cells form one round.  `pending` are cells being
        evaluated right now (asynchronous search): never proposed again, and model-based
        strategies condition on them as fantasies.

        Args:
            history: every query of the trial so far, with scores (NaN for failures).
            n: the batch size asked for, never more than `limit`.
            limit: the most candidates the caller takes (the budget left).
            rng: the round's generator, seeded by the trial's seed and its queries so far.
            pending: candidates being evaluated now.

        Returns:
            The proposed candidates; empty when the strategy has nothing left to propose.
        """


def run_search(
    strategy: Strategy, objective: Objective, budget: int, batch: int = 5, seed: int = 0, history: History | None = None
) -> Iterator[Round]:
    """Query exactly `budget` candidates (those already in `history` included), round by round.

    Yields a `Round` after each batch; the history (pass your own to keep or resume it)
    holds every query in order.  The RNG of a round is seeded by (seed, queries so far), so a
    resumed search continues exactly as the uninterrupted one would have.

    Args:
        strategy: proposes each round's candidates.
        objective: scores a list of candidates, one float per candidate (NaN: failed).
        budget: total queries, those already in `history` included; at least 1.
        batch: candidates asked for per round (the initial design may take more); at least 1.
        seed: the trial's seed, which with the history's length seeds each round's RNG.
        history: the queries so far, extended in place; None: a new, empty one.

    Yields:
        One `Round` per batch: its candidates and scores, queries spent and the best so far.

    Raises:
        SearchError: for a budget or batch below 1, a strategy that runs dry or repeats a
            candidate, or an objective that returns the wrong number of scores.
    """
    if budget < 1 or batch < 1:
        raise SearchError("budget and batch must be at least 1")
    history = history if history is not None else History()
    number = 0
    while len(history) < budget:
        start = time.perf_counter()
        limit = budget - len(history)
        rng = np.random.default_rng([seed, len(history)])
        proposed = strategy.propose(history, min(batch, limit), limit, rng)
        if not proposed:
            raise SearchError(f"{strategy.name}: nothing left to propose after {len(history)} queries")
        proposed = proposed[:limit]
        keys = [strategy.key(c) for c in proposed]
        if len(set(keys)) != len(keys) or any(history.seen(k) for k in keys):
            raise SearchError(f"{strategy.name} proposed a candidate twice")  # a bug, never the user's
        scores = [float(s) for s in objective(list(proposed))]
        if len(scores) != len(proposed):
            raise SearchError(f"the objective returned {len(scores)} scores for {len(proposed)} candidates")
        for c, k, s in zip(proposed, keys, scores):
            history.add(c, k, s)
        number += 1
        best, cand = history.best()
        yield Round(number, list(proposed), scores, len(history), best, cand, time.perf_counter() - start)


def search(
    strategy: Strategy,
    objective: Objective,
    budget: int,
    batch: int = 5,
    seed: int = 0,
    history: History | None = None,
    on_round: Callable[[Round], None] | None = None,
) -> History:
    """`run_search` to the end; returns the full history.

    Args:
        strategy: proposes each round's candidates.
        objective: scores a list of candidates, one float per candidate (NaN: failed).
        budget: total queries, those already in `history` included.
        batch: candidates asked for per round.
        seed: the trial's seed, which with the history's length seeds each round's RNG.
        history: the queries so far, extended in place; None: a new, empty one.
        on_round: called with each `Round` as it finishes; None: nothing is called.

    Returns:
        The history of all `budget` queries, in order.
    """
    history = history if history is not None else History()
    for r in run_search(strategy, objective, budget, batch, seed, history):
        if on_round is not None:
            on_round(r)
    return history


def unqueried(size: int, history: History, pending: Sequence[Any] = ()) -> np.ndarray:
    """Pool indices neither queried nor pending.

    Args:
        size: the number of cells in the pool.
        history: the trial's queries; its keys are pool indices.
        pending: pool indices being evaluated now.

    Returns:
        The free indices in increasing order, int64.
    """
    mask = np.ones(size, dtype=bool)
    if history.keys:
        mask[np.asarray(history.keys, dtype=np.int64)] = False
    if len(pending):
        mask[np.asarray(pending, dtype=np.int64)] = False
    return np.nonzero(mask)[0]


#: cells a round proposes unless a strategy says otherwise (pool BO, random search)
DEFAULT_BATCH = 5
