"""Regularised evolution (Real et al. 2019), over a pool of cells or over a whole space.

The algorithm: start with `population` random cells; then repeatedly sample `sample` members
of the population at random, take the best as the parent, mutate it once (one op, or one edge)
into a valid cell never queried before, query the child, and let the oldest member die.  The
population is therefore always the last `population` queried cells, so the strategy needs no
state of its own: it reads the population off the history (and resumes for free).

Sizes follow the NB201 literature: NASLib's NB201 runs use population 10 / sample 3 (the
issue's simulated baseline), the NAS-Bench-201 paper population 10 / sample 10 -- here
population 10, sample 3 by default.  Repeated cells are never queried: a mutant that was
already queried is redrawn (the simulated baseline in the issue counted repeats as queries,
which only makes it weaker).

Mutation is generic, through the space's own rules: change the type of one middle node, or
flip one adjacency entry, then canonicalise, `validate` and `hash`.  Spaces whose graph is
fixed (NB201: its "edges" are nodes here, so an op change *is* the edge-op mutation of the
NB201 papers) reject every edge flip, and the mutation redraws; ENAS keeps its chain and
output edges by rejection too.  A failed score (NaN) never wins a tournament.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.search.registry import SearchContext, register
from svge_cli.search.strategies import History, SearchError, Strategy

DEFAULT_POPULATION = 10
DEFAULT_SAMPLE = 3
MUTATION_TRIES = 200


def mutate(
    space: Any, arch: Arch, rng: np.random.Generator, edge_share: float = 0.5, node_limit: int | None = None
) -> Arch | None:
    """One random op change or edge flip of `arch` that is a valid cell of `space` (canonical form).

    None when no valid mutant turned up in MUTATION_TRIES draws.

    Args:
        space: the search space whose node types, canonical form and rules the mutant must respect.
        arch: the cell to mutate; it is copied, never changed.
        rng: draws the kind of mutation and the node or edge it touches.
        edge_share: the chance that a draw flips an adjacency entry rather than retypes a middle node.
        node_limit: the most nodes a valid mutant may have, in place of the space's own limit; None keeps it.

    Returns:
        The mutant in canonical form, valid in `space` and different from `arch`, or None as above.
    """
    n = arch.n_nodes
    ops_range = range(2, space.vocab_size)  # 0 and 1 are the input and output types
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for _ in range(MUTATION_TRIES):
        ops, adj = arch.ops.copy(), arch.adj.copy()
        if n > 2 and (rng.random() >= edge_share or not pairs):
            v = int(rng.integers(1, n - 1))
            choices = [t for t in ops_range if t != ops[v]]
            if not choices:
                continue
            ops[v] = choices[int(rng.integers(len(choices)))]
        elif pairs:
            i, j = pairs[int(rng.integers(len(pairs)))]
            adj[i, j] = 1 - adj[i, j]
        else:
            return None
        try:
            child = space.canonical(Arch(ops, adj))
        except ArchError:
            continue
        if space.validate(child, node_limit) is None and child != arch:
            return child
    return None


def _parent(history: History, population: int, sample: int, rng: np.random.Generator) -> Any:
    """Tournament over the last `population` queries: the best of `sample` drawn members."""
    start = max(0, len(history) - population)
    members = np.arange(start, len(history))
    drawn = rng.choice(members, size=min(sample, len(members)), replace=False)
    scores = np.asarray([history.scores[i] for i in drawn], dtype=np.float64)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return history.candidates[int(drawn[int(np.argmax(scores))])]


class EvolutionSpace:
    """Regularised evolution over any space (candidates: canonical `Arch`, keyed by the space hash).

    `sampler(n, seed)` draws the first population (default: the space's own uniform sampler;
    for NB101 pass one that draws from the cached enumeration, e.g. `datasets.sample_cells`,
    since `NB101Space.sample` enumerates the space on every call).  The objective is any
    callable on cells, e.g. an `--evaluator` program.

    Args:
        space: the search space the cells are drawn from, mutated in, validated and hashed by.
        population: how many of the latest queried cells form the population (also the random start).
        sample: how many population members each tournament draws; at most `population`.
        node_limit: the most nodes a cell may have, in place of the space's own limit; None keeps it.
        sampler: `sampler(n, seed)` gives random cells for the start and fallbacks; None uses `space.sample`.
    """

    name = "evolution"

    def __init__(
        self,
        space: Any,
        population: int = DEFAULT_POPULATION,
        sample: int = DEFAULT_SAMPLE,
        node_limit: int | None = None,
        sampler: Callable[[int, int], list[Arch]] | None = None,
    ) -> None:
        if population < 1 or not 1 <= sample <= population:
            raise SearchError("evolution needs population >= 1 and 1 <= sample <= population")
        self.space, self.population, self.sample, self.node_limit = space, population, sample, node_limit
        self.sampler = sampler or space.sample

    def key(self, candidate: Arch) -> Hashable:
        return self.space.hash(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Arch] = ()
    ) -> list[Arch]:
        """Random cells until the population is full, then one mutated tournament winner per cell asked for.

        Args:
            history: every query so far; its last `population` cells are the population.
            n: how many cells the driver asks for.
            limit: the most cells that may be returned (the budget left); the random start may fill up to it.
            rng: every random draw of this proposal (tournaments, mutations, random cells).
            pending: cells being evaluated now; they count towards the population and are never proposed.

        Returns:
            Canonical cells neither queried nor pending, no two alike; random ones stand in when the
            mutations run dry, and fewer than asked come back only when those run out too.
        """
        taken: set = {self.key(c) for c in pending}
        if len(history) + len(pending) < self.population or not len(history):
            want = min(max(n, self.population - len(history) - len(pending)), limit)
            return self._random(history, want, rng, taken)
        out: list[Arch] = []
        for _ in range(MUTATION_TRIES):
            parent = _parent(history, self.population, self.sample, rng)
            child = mutate(self.space, parent, rng, node_limit=self.node_limit)
            if child is None:
                continue
            k = self.space.hash(child)
            if history.seen(k) or k in taken:
                continue
            out.append(child)
            taken.add(k)
            if len(out) == n:
                return out
        # a neighbourhood exhausted by the history: fall back on fresh random cells
        return out + self._random(history, n - len(out), rng, taken)

    def _random(self, history: History, n: int, rng: np.random.Generator, taken: set) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(MUTATION_TRIES):
            for arch in self.sampler(max(n, 1), int(rng.integers(2**31))):
                arch = self.space.canonical(arch)
                k = self.space.hash(arch)
                if self.space.validate(arch, self.node_limit) is None and not history.seen(k) and k not in taken:
                    out.append(arch)
                    taken.add(k)
                    if len(out) == n:
                        return out
        return out


class EvolutionPool:
    """Regularised evolution whose cells come from a pool (candidates: pool indices).

    Mutants are looked up in the pool by hash.  On a full enumeration (NB201, NB101) every
    valid mutant is in the pool.  On a labelled subset (the 1,000 NB101 cells of a table) a
    mutant is rarely in it, so after `tries` misses the child is the unqueried pool cell
    nearest to the parent in one-hot distance (`neighbours`), the closest the pool has to
    a one-step mutation.

    Args:
        space: the search space the pool's cells belong to, which mutates and hashes them.
        archs: the pool's cells, candidate i being the i-th; a `Dataset` is read one cell at a time.
        hashes: the canonical hash of each pool cell, in the same order, to look mutants up by.
        population: how many of the latest queried cells form the population (also the random start).
        sample: how many population members each tournament draws; at most `population`.
        onehot: one row per pool cell, its one-hot encoding, for the nearest-cell fallback; None: no
            fallback, a child not found by mutation is a random unqueried cell instead.
        tries: how many mutants are looked up in the pool before falling back.
    """

    name = "evolution"

    def __init__(
        self,
        space: Any,
        archs: Sequence[Arch] | Dataset,
        hashes: Sequence[str] | np.ndarray,
        population: int = DEFAULT_POPULATION,
        sample: int = DEFAULT_SAMPLE,
        onehot: np.ndarray | None = None,
        tries: int = 20,
    ) -> None:
        if not len(archs):
            raise SearchError("the pool is empty")
        if population < 1 or not 1 <= sample <= population:
            raise SearchError("evolution needs population >= 1 and 1 <= sample <= population")
        # a Dataset is read cell by cell: NB101's 423,624 cells never become Arch objects at once
        self.space, self.size = space, len(archs)
        self._arch = archs.arch if isinstance(archs, Dataset) else archs.__getitem__
        self.index = {str(h): i for i, h in enumerate(hashes)}
        self.population, self.sample, self.onehot, self.tries = population, sample, onehot, tries

    def key(self, candidate: int) -> int:
        return int(candidate)

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[int] = ()
    ) -> list[int]:
        """Random pool cells until the population is full, then one child of a tournament winner per cell.

        Args:
            history: every query so far (pool indices); its last `population` cells are the population.
            n: how many cells the driver asks for.
            limit: the most cells that may be returned (the budget left); the random start may fill up to it.
            rng: every random draw of this proposal (tournaments, mutations, tie-breaks, random cells).
            pending: pool indices being evaluated now; they count towards the population, never proposed.

        Returns:
            Pool indices neither queried nor pending, no two alike; random ones make up for children
            not found, and fewer than asked come back only when the pool has no unqueried cells left.
        """
        taken: set[int] = {int(c) for c in pending}
        if len(history) + len(pending) < self.population or not len(history):
            want = min(max(n, self.population - len(history) - len(pending)), limit)
            return self._random(history, want, rng, taken)
        out: list[int] = []
        for _ in range(n):
            parent = int(_parent(history, self.population, self.sample, rng))
            child = self._child(parent, history, taken, rng)
            if child is None:
                break
            out.append(child)
            taken.add(child)
        if len(out) < n:
            out += self._random(history, n - len(out), rng, taken)
        return out

    def _child(self, parent: int, history: History, taken: set[int], rng: np.random.Generator) -> int | None:
        for _ in range(self.tries):
            mutant = mutate(self.space, self._arch(parent), rng)
            if mutant is None:
                break
            i = self.index.get(self.space.hash(mutant))
            if i is not None and not history.seen(i) and i not in taken:
                return i
        if self.onehot is None:
            return None
        d = np.abs(self.onehot - self.onehot[parent]).sum(1).astype(np.float64)
        d[np.asarray(history.keys, dtype=np.int64)] = np.inf
        if taken:
            d[list(taken)] = np.inf
        j = int(np.argmin(d + rng.random(len(d)) * 1e-3))  # random tie-break among equally near cells
        return None if not np.isfinite(d[j]) else j

    def _random(self, history: History, n: int, rng: np.random.Generator, taken: set[int]) -> list[int]:
        mask = np.ones(self.size, dtype=bool)
        if history.keys:
            mask[np.asarray(history.keys, dtype=np.int64)] = False
        if taken:
            mask[list(taken)] = False
        free = np.nonzero(mask)[0]
        return [int(i) for i in rng.choice(free, size=min(n, len(free)), replace=False)]


#: a batch of Q runs Q tournaments on the same population, so one child at a time is its best form
@register("evolution", "regularised evolution (population 10, tournament 3), the other baseline", 1, rank=4)
def build_evolution(ctx: SearchContext, req: Any) -> Callable[[int], Strategy]:
    """Over the enumeration where the space can be listed (mutants looked up in it), else the whole space."""
    pool, sp = ctx.pool, ctx.space
    if pool is not None:
        return lambda seed: EvolutionPool(sp, pool, pool.hashes)
    return lambda seed: EvolutionSpace(sp)
