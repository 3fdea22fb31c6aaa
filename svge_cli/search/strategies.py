"""The search driver, the `Strategy` protocol, random search and pool Bayesian optimisation.

A strategy only proposes; the driver queries.  `run_search` asks the strategy for the next
candidates given everything queried so far, scores them with the objective, and yields one
`Round` per batch, until exactly `budget` queries are spent.  Because a strategy sees only the
history (and an RNG seeded by the run's seed and the history's length), a search resumed from
a saved history proposes what the uninterrupted search would have proposed.

Candidates are pool indices (ints) for pool strategies and `Arch` cells for strategies over a
whole space; each strategy says how it keys them (`key`), and the driver refuses a strategy
that proposes a key already queried, so "never repeats a cell" is enforced in one place.

Pool BO (`PoolBO`) is the search for enumerable spaces: every cell's feature vector (latent
mean, z-scored) is known in advance, so the acquisition ranks the not-yet-queried cells
themselves -- nothing to decode, nothing invalid, no duplicates.  A batch is chosen greedily:
with the kriging believer (``kb``) each pick is treated as observed at its predicted mean
before the next pick, which shrinks the variance around it and spreads the batch out;
``topk`` takes the q best acquisition values at once (arch2vec's rule).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Protocol, Sequence

import numpy as np
from scipy.special import ndtr

from svge_cli.errors import SvgeError
from svge_cli.search.surrogates import Surrogate, make_surrogate, transform_targets

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
        """


def run_search(
    strategy: Strategy, objective: Objective, budget: int, batch: int = 5, seed: int = 0, history: History | None = None
) -> Iterator[Round]:
    """Query exactly `budget` candidates (those already in `history` included), round by round.

    Yields a `Round` after each batch; the history (pass your own to keep or resume it)
    holds every query in order.  The RNG of a round is seeded by (seed, queries so far), so a
    resumed search continues exactly as the uninterrupted one would have.
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
    """`run_search` to the end; returns the full history."""
    history = history if history is not None else History()
    for r in run_search(strategy, objective, budget, batch, seed, history):
        if on_round is not None:
            on_round(r)
    return history


# ---------------------------------------------------------------- random search


def _unqueried(size: int, history: History, pending: Sequence[Any] = ()) -> np.ndarray:
    """Pool indices neither queried nor pending."""
    mask = np.ones(size, dtype=bool)
    if history.keys:
        mask[np.asarray(history.keys, dtype=np.int64)] = False
    if len(pending):
        mask[np.asarray(pending, dtype=np.int64)] = False
    return np.nonzero(mask)[0]


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
        free = _unqueried(self.size, history, pending)
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


# ---------------------------------------------------------------- acquisitions


def expected_improvement(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    sd = np.sqrt(np.maximum(var, 1e-18))
    z = (mean - best) / sd
    return sd * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def acquisition(name: str, mean: np.ndarray, var: np.ndarray, best: float, beta: float) -> np.ndarray:
    if name == "ei":
        return expected_improvement(mean, var, best)
    if name == "ucb":
        return mean + beta * np.sqrt(np.maximum(var, 0))
    if name == "mean":
        return mean
    raise SearchError(f"unknown acquisition {name!r} (ei, ucb, ts, mean)")


# ---------------------------------------------------------------- pool BO


class PoolBO:
    """Bayesian optimisation over a finite pool of cells given as feature vectors.

    Round 0 queries `init` random cells; each later round fits the surrogate on every
    scored cell (targets transformed by `target`, see `transform_targets`) and picks a
    batch among the unqueried cells:

    * the acquisition (`ei`, `ucb` with `beta`, or `ts` Thompson sampling) is computed for
      every unqueried cell from marginal predictions;
    * the `shortlist` best cells get a joint posterior, and the batch is picked greedily on
      it: ``kb`` conditions on each pick at its predicted mean (kriging believer; exact
      rank-one updates) before the next, ``topk`` takes the best `n` at once.  Thompson
      sampling draws one joint sample of the shortlist per pick instead.

    `local` > 0 restricts candidates to the `local` nearest unqueried cells (Euclidean in
    feature space) of each of the best 5 cells seen, a trust-region-like focus for large
    budgets; 0 ranks the whole pool.
    """

    name = "pool"

    def __init__(
        self,
        features: np.ndarray,
        surrogate: str | Surrogate = "gp",
        init: int = 10,
        acquisition: str = "ei",
        batch_rule: str = "kb",
        target: str = "none",
        shortlist: int = 512,
        beta: float = 2.0,
        local: int = 0,
        seed: int = 0,
    ) -> None:
        if len(features) < 1:
            raise SearchError("the pool is empty")
        if batch_rule not in ("kb", "topk"):
            raise SearchError(f"unknown batch rule {batch_rule!r} (kb, topk)")
        self.features = np.asarray(features, dtype=np.float64)
        self.model = make_surrogate(surrogate, seed) if isinstance(surrogate, str) else surrogate
        self.init, self.acq, self.batch_rule, self.target = max(1, init), acquisition, batch_rule, target
        self.shortlist, self.beta, self.local = shortlist, beta, local
        self.last_fit_seconds = 0.0

    def key(self, candidate: int) -> int:
        return int(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Any] = ()
    ) -> list[int]:
        free = _unqueried(len(self.features), history, pending)
        cells, scores = history.scored()
        started = len(history) + len(pending)
        if started < self.init or len(scores) < 2 or np.ptp(scores) == 0:
            k = min(max(n, self.init - started), limit, len(free))
            return [int(i) for i in rng.choice(free, size=k, replace=False)]
        n = min(n, len(free))
        idx = np.asarray(cells, dtype=np.int64)
        y = transform_targets(scores, self.target)
        start = time.perf_counter()
        self.model.fit(self.features[idx], y)
        self.last_fit_seconds = time.perf_counter() - start
        if self.local > 0:
            free = self._local(free, idx, scores)
        mean, var = self.model.predict(self.features[free])
        best = float(y.max())
        if self.acq == "ts":
            first = acquisition("ucb", mean, var, best, 3.0)
        else:
            first = acquisition(self.acq, mean, var, best, self.beta)
        if self.batch_rule == "topk" and self.acq != "ts":
            return [int(free[i]) for i in _top(first, n)]
        short = _top(first, min(max(self.shortlist, n), len(free)))
        m, cov, best = self._believe(np.asarray(pending, dtype=np.int64), free[short], best)
        picks = self._greedy(m, cov, best, n, rng)
        return [int(free[short[i]]) for i in picks]

    def _believe(self, pending: np.ndarray, short: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Joint posterior of the shortlist given the pending cells observed at their predicted means.

        The kriging believer for asynchronous search: the means stay, the covariance shrinks
        around every cell still being evaluated, exactly as for the earlier picks of a batch.
        """
        if not len(pending):
            m, cov = self.model.joint(self.features[short])
            return m, cov, best
        mean, cov = self.model.joint(self.features[np.concatenate([pending, short])])
        p = len(pending)
        c_pp = cov[:p, :p] + float(self.model.noise) * np.eye(p)
        c_sp = cov[p:, :p]
        cov_s = cov[p:, p:] - c_sp @ np.linalg.solve(c_pp, c_sp.T)
        return mean[p:], cov_s, max(best, float(mean[:p].max()))

    def _greedy(self, mean: np.ndarray, cov: np.ndarray, best: float, n: int, rng: np.random.Generator) -> list[int]:
        """`n` shortlist positions, each chosen after conditioning on the previous picks."""
        mean, cov = mean.copy(), cov.copy()
        noise = float(self.model.noise)
        taken: list[int] = []
        for _ in range(n):
            if self.acq == "ts":
                sample = _joint_sample(mean, cov, rng)
                sample[taken] = -np.inf
                j = int(np.argmax(sample))
            else:
                a = acquisition(self.acq, mean, np.diag(cov), best, self.beta)
                a[taken] = -np.inf
                j = int(np.argmax(a))
            taken.append(j)
            # kriging believer: observe the pick at its mean -> the mean stays, the covariance shrinks
            c = cov[:, j].copy()
            cov -= np.outer(c, c) / (c[j] + noise)
            best = max(best, float(mean[j]))
        return taken

    def _local(self, free: np.ndarray, idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The unqueried cells among the `local` nearest of each of the 5 best queried cells."""
        top = idx[np.argsort(-scores)[:5]]
        f = self.features[free]
        keep = np.zeros(len(free), dtype=bool)
        for t in top:
            d = np.square(f - self.features[t]).sum(1)
            keep[np.argpartition(d, min(self.local, len(d) - 1))[: self.local]] = True
        return free[keep]


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, best first (ties by index, so runs are reproducible)."""
    k = min(k, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.lexsort((part, -values[part]))]


def _joint_sample(mean: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return mean + vecs @ (np.sqrt(np.clip(vals, 0, None)) * rng.standard_normal(len(mean)))


#: the default pool search, chosen by benchmarks/search.py on NB201 validation accuracy (docs/search.md):
#: isotropic Matern 5/2 GP on z-scored latent means, rank (Gaussian-copula) targets, 10 random
#: initial cells, batches of 5 by expected improvement with the kriging believer.  The rank
#: transform is what keeps NB201's long tail of broken cells (10% accuracy) from flattening the
#: GP's view of the top: with plain z-scored targets 2 of 20 seeds stalled for 100+ queries.
DEFAULT_POOL = {"surrogate": "gp", "init": 10, "acquisition": "ei", "batch_rule": "kb", "target": "rank"}
DEFAULT_BATCH = 5
