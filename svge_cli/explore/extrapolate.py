"""Cells larger than any seen in training, grown from a seed cell, and their zero-shot ranking (Sec. IV-E).

Two families of cells with one more node than the seed (docs/explore.md counts them):

* ``single`` (the default): the complete single-insertion family.  A new node
  of any operation goes in at any position between the input and the output,
  with any non-empty set of edges from earlier nodes and any non-empty set of
  edges to later nodes; the seed's own edges stay.  The cells that keep every
  rule of the space except its size budget are kept, one per canonical hash.
* ``paper``: the 1,384 NAS-Bench-101 graphs of the SVGe authors' script -- the
  old output turned into an op node that feeds a new output (3 ops x every
  subset of the other old nodes as extra inputs of the new output), the old
  input turned into an op node behind a new input (3 ops x every subset of the
  other old nodes as extra successors of the new input), and 1,000 random
  cells of the new size.

Growing by more than one node (ENAS to 12 or 14 layers) repeats the single
insertion step: every step keeps the `beam` best-scored cells and grows those.

Size budget: a grown cell is checked with the node limit raised to its size
and, for NAS-Bench-101, with the 9-edge limit lifted as well (`max_edges`
brings one back): every cell with one node more than the best NB101 cell
(already at 9 edges) has at least 11 edges, and so do all of the paper's.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.spaces import SearchSpace

#: scores a batch of cells (higher is better): the finetuned regressor on the encoder's latent means
Scorer = Callable[[Sequence[Arch]], np.ndarray]
#: progress callback: (cells just scored, what is happening)
Step = Callable[[int, str], None]

FAMILIES = ("single", "paper")
PAPER_RANDOM_CELLS = 1000
#: random edge draws per node in the paper family's random cells (the authors' script draws 5 per node)
_RANDOM_PAIRS_PER_NODE = 5
#: give up on random cells after this many draws per cell asked for
_RANDOM_TRIES_PER_CELL = 200
SCORE_BATCH = 1024


# ---------------------------------------------------------------- rules for grown cells


def growth_rules(space: SearchSpace, max_edges: int | None = None) -> SearchSpace:
    """The space's rules for grown cells: its edge budget, if it has one, set to `max_edges` (None: none).

    The node budget needs no such copy: `validate` takes it as an argument.
    """
    if space.max_edges is None:
        if max_edges is not None:
            raise SvgeError(f"space {space.name} has no edge limit to set (--max-edges is for nb101)")
        return space
    rules = copy.copy(space)
    rules.max_edges = sys.maxsize if max_edges is None else max_edges
    return rules


def middle_types(space: SearchSpace) -> list[int]:
    """Node types a new middle node may carry: every type but input and output."""
    return [t for t in range(space.vocab_size) if t not in (INPUT_TYPE, OUTPUT_TYPE)]


def best_labelled(ds: Dataset, column: str) -> tuple[Arch, float]:
    """The cell of `ds` with the highest finite value in `column`, and that value."""
    if column not in ds.labels:
        known = ", ".join(ds.labels) or "none"
        raise SvgeError(f"the {ds.space} dataset has no label column {column!r} (columns: {known})")
    values = np.where(np.isfinite(ds.labels[column]), ds.labels[column], -np.inf)
    if len(values) == 0 or not np.isfinite(values.max()):
        raise SvgeError(f"no cell of the {ds.space} dataset has a value in {column!r}")
    best = int(np.argmax(values))
    return ds.arch(best), float(values[best])


# ---------------------------------------------------------------- families


@dataclass
class Family:
    """Distinct valid cells of one family, with how many candidates led to them."""

    name: str
    cells: list[Arch] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    #: distinct cells per part of the family (in the order the parts were generated)
    parts: dict[str, int] = field(default_factory=dict)
    #: candidate cells tried before the validity check and deduplication
    candidates: int = 0
    #: valid candidates, before deduplication
    valid: int = 0
    #: True when only a seeded sample of the valid candidates was kept (see `single_insertions`)
    sampled: bool = False

    def __len__(self) -> int:
        return len(self.cells)

    def add(self, part: str, cells: Sequence[Arch], rules: SearchSpace, seen: set[str]) -> None:
        """Append the cells whose hash is new (to `seen`, which is updated), counting them for `part`.

        Args:
            part: the name of the part of the family the kept cells are counted under.
            cells: the candidate cells; each is kept only if its hash is not in `seen` yet.
            rules: the space whose hash identifies a cell.
            seen: the hashes already taken, shared across calls; the kept cells' hashes are added to it.
        """
        kept = 0
        for cell in cells:
            h = rules.hash(cell)
            if h not in seen:
                seen.add(h)
                self.cells.append(cell)
                self.hashes.append(h)
                kept += 1
        self.parts[part] = self.parts.get(part, 0) + kept


def _subsets(k: int, nonempty: bool) -> np.ndarray:
    """Every subset of k items as rows of 0/1 (bit i of the row number = item i), in counting order."""
    rows = np.arange(1 if nonempty else 0, 2**k, dtype=np.int64)
    return ((rows[:, None] >> np.arange(k)) & 1).astype(np.uint8)


def _embedded(seed: Arch, position: int) -> np.ndarray:
    """Adjacency of n + 1 nodes holding the seed's edges, node `position` left free (later nodes move up)."""
    n = seed.n_nodes
    index = np.r_[np.arange(position), np.arange(position + 1, n + 1)]
    adj = np.zeros((n + 1, n + 1), dtype=np.uint8)
    adj[np.ix_(index, index)] = seed.adj
    return adj


def _wirings(seed: Arch) -> Iterator[tuple[int, np.ndarray]]:
    """(position, adjacencies (W, n + 1, n + 1)) of every way to wire a new node in at each position."""
    n = seed.n_nodes
    for p in range(1, n):
        base = _embedded(seed, p)
        ins, outs = _subsets(p, True), _subsets(n - p, True)
        adj = np.broadcast_to(base, (len(ins) * len(outs), n + 1, n + 1)).copy()
        adj[:, :p, p] = np.repeat(ins, len(outs), axis=0)
        adj[:, p, p + 1 :] = np.tile(outs, (len(ins), 1))
        yield p, adj


def _with_op(seed: Arch, position: int, op: int) -> np.ndarray:
    return np.insert(seed.ops, position, op)


def _is_grown(rules: SearchSpace, cell: Arch, nodes: int) -> bool:
    """Valid under the growth rules and still `nodes` nodes once in canonical form (nothing pruned)."""
    return rules.validate(cell, nodes) is None and rules.canonical(cell).n_nodes == nodes


def single_insertions(
    rules: SearchSpace, seed: Arch, limit: int | None = None, rng: np.random.Generator | None = None
) -> Family:
    """The complete single-insertion family of `seed` under `rules` (module docstring).

    Each wiring is checked once, with the first op, and shares that verdict with
    the other ops: the rules of nb101 and enas treat all operations alike.  Every
    cell kept is checked again on its own, so no invalid cell gets through.  With
    `limit`, a family with more valid candidates than that keeps a uniform sample
    of `limit` of them (drawn with `rng`): ENAS families double with every layer.

    Args:
        rules: the growth rules (see `growth_rules`) that every grown cell must pass.
        seed: the cell that gets one new node.
        limit: the most valid candidates kept, sampled before deduplication; None keeps them all.
        rng: draws the sample when `limit` applies; None uses a generator seeded with 0.

    Returns:
        The distinct valid cells of seed.n_nodes + 1 nodes, in canonical form, with their counts.
    """
    nodes, types = seed.n_nodes + 1, middle_types(rules)
    family = Family("single")
    valid: list[tuple[int, np.ndarray]] = []
    for p, adjs in _wirings(seed):
        family.candidates += len(adjs) * len(types)
        probe = _with_op(seed, p, types[0])
        ok = [a for a in adjs if _is_grown(rules, Arch(probe, a), nodes)]
        valid += [(p, a) for a in ok]
    family.valid = len(valid) * len(types)
    chosen = np.arange(family.valid)
    if limit is not None and family.valid > limit:
        rng = rng or np.random.default_rng(0)
        chosen = np.sort(rng.choice(family.valid, size=limit, replace=False))
        family.sampled = True
    cells = []
    for k in chosen.tolist():
        (p, adj), op = valid[k // len(types)], types[k % len(types)]
        cell = Arch(_with_op(seed, p, op), adj)
        if _is_grown(rules, cell, nodes):
            cells.append(rules.canonical(cell))
    family.add("single insertions", cells, rules, set())
    return family


def paper_family(
    rules: SearchSpace, seed: Arch, random_cells: int = PAPER_RANDOM_CELLS, rng: np.random.Generator | None = None
) -> Family:
    """The SVGe authors' NB101-8 family grown from `seed` (module docstring), distinct and valid.

    The random part draws cells as the authors' script does (5 random vertex
    pairs per node, each joined from the lower to the higher index, ops uniform)
    but, unlike the script, keeps only valid cells of the new size that are not
    already in the family, until `random_cells` are found.

    Args:
        rules: the growth rules (see `growth_rules`) that every grown cell must pass.
        seed: the cell the family grows from by one node.
        random_cells: how many distinct valid random cells of the new size to add.
        rng: draws the random cells; None uses a generator seeded with 0.

    Returns:
        The distinct valid cells in canonical form, in the parts output side, input side and random.
    """
    n, nodes, types = seed.n_nodes, seed.n_nodes + 1, middle_types(rules)
    family, seen = Family("paper"), set()
    subsets = _subsets(n - 1, False)
    for part, build in (("output side", _output_side), ("input side", _input_side)):
        cells = [build(seed, op, s) for op in types for s in subsets]
        family.candidates += len(cells)
        ok = [rules.canonical(c) for c in cells if _is_grown(rules, c, nodes)]
        family.valid += len(ok)
        family.add(part, ok, rules, seen)
    rng = rng or np.random.default_rng(0)
    found, tries = 0, 0
    while found < random_cells:
        if tries >= _RANDOM_TRIES_PER_CELL * random_cells:
            raise SvgeError(f"found only {found} of {random_cells} random valid {nodes}-node cells")
        cell = _random_cell(rng, nodes, types)
        tries += 1
        if _is_grown(rules, cell, nodes):
            before = len(family)
            family.add("random", [rules.canonical(cell)], rules, seen)
            found += len(family) - before
    family.candidates += tries
    family.valid += found
    return family


def _output_side(seed: Arch, op: int, extra: np.ndarray) -> Arch:
    """The old output becomes an `op` node feeding a new output, which `extra` nodes also feed."""
    n = seed.n_nodes
    adj = np.zeros((n + 1, n + 1), dtype=np.uint8)
    adj[:n, :n] = seed.adj
    adj[: n - 1, n] = extra
    adj[n - 1, n] = 1
    return Arch(np.r_[seed.ops[:-1], op, OUTPUT_TYPE], adj)


def _input_side(seed: Arch, op: int, extra: np.ndarray) -> Arch:
    """The old input becomes an `op` node behind a new input, which also feeds the `extra` nodes."""
    n = seed.n_nodes
    adj = np.zeros((n + 1, n + 1), dtype=np.uint8)
    adj[1:, 1:] = seed.adj
    adj[0, 1] = 1
    adj[0, 2:] = extra
    return Arch(np.r_[INPUT_TYPE, op, seed.ops[1:]], adj)


def _random_cell(rng: np.random.Generator, nodes: int, types: list[int]) -> Arch:
    ops = np.r_[INPUT_TYPE, rng.choice(types, size=nodes - 2), OUTPUT_TYPE]
    adj = np.zeros((nodes, nodes), dtype=np.uint8)
    a, b = rng.integers(0, nodes, size=(2, _RANDOM_PAIRS_PER_NODE * nodes))
    keep = a != b
    adj[np.minimum(a, b)[keep], np.maximum(a, b)[keep]] = 1
    return Arch(ops, adj)


# ---------------------------------------------------------------- ranking and growth


@dataclass
class Ranked:
    """The family of the last growth step, its scores, and the cells every step grew from."""

    family: Family
    scores: np.ndarray
    path: list[Arch]
    #: family size per growth step (the last one is `family`)
    step_sizes: list[int]

    def top(self, k: int) -> list[tuple[Arch, float]]:
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.family.cells[i], float(self.scores[i])) for i in order]


def score_all(score: Scorer, cells: Sequence[Arch], on_step: Step | None = None) -> np.ndarray:
    """Scores of every cell, batch by batch, as float64.

    Args:
        score: the scorer, called on batches of at most SCORE_BATCH cells; one finite score per cell.
        cells: the cells to score.
        on_step: called after each batch with its size and a progress line; None reports nothing.

    Returns:
        The scores, of shape (len(cells),), in the order of `cells`.
    """
    out = []
    for s in range(0, len(cells), SCORE_BATCH):
        batch = cells[s : s + SCORE_BATCH]
        values = np.asarray(score(batch), dtype=np.float64).reshape(-1)
        if len(values) != len(batch) or not np.isfinite(values).all():
            raise SvgeError("the predictor returned missing or non-finite scores")
        out.append(values)
        if on_step:
            on_step(len(batch), f"{s + len(batch):,}/{len(cells):,} scored")
    return np.concatenate(out) if out else np.zeros(0)


def grow(
    rules: SearchSpace,
    seed: Arch,
    nodes: int,
    score: Scorer,
    family: str = "single",
    beam: int = 1,
    limit: int | None = None,
    rng_seed: int = 0,
    on_step: Step | None = None,
) -> Ranked:
    """Grow `seed` to `nodes` nodes one insertion at a time, scoring every family on the way.

    Every step keeps the `beam` best cells of its family and grows each of them;
    the family of the last step is returned with its scores.  `family="paper"`
    is a single step by definition.

    Args:
        rules: the growth rules (see `growth_rules`) that every grown cell must pass.
        seed: the cell to grow from.
        nodes: the size of the cells to reach, more than the seed's (exactly one more for "paper").
        score: rates each family's cells, higher is better.
        family: which family each step makes, "single" or "paper".
        beam: how many of a step's best cells the next step grows from.
        limit: the most valid candidates each single-insertion family keeps; None keeps them all.
        rng_seed: seeds the sampling under `limit` and the paper family's random cells.
        on_step: called after each scored batch with its size and a progress line; None reports nothing.

    Returns:
        The last step's family and scores, the path of cells grown from (seed first) and each step's size.
    """
    if family not in FAMILIES:
        raise SvgeError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    if nodes <= seed.n_nodes:
        raise SvgeError(f"the seed cell already has {seed.n_nodes} nodes; ask for more than that")
    if family == "paper" and nodes != seed.n_nodes + 1:
        raise SvgeError(f"the paper family adds exactly one node: ask for {seed.n_nodes + 1} nodes")
    rng = np.random.default_rng(rng_seed)
    frontier, path, sizes = [seed], [seed], []
    while True:
        if family == "paper":
            fam = paper_family(rules, seed, rng=rng)
        else:
            fam = _union([single_insertions(rules, cell, limit, rng) for cell in frontier], rules)
        if not fam.cells:
            raise SvgeError(_empty_reason(rules, frontier[0]))
        sizes.append(len(fam))
        scores = score_all(score, fam.cells, on_step)
        ranked = Ranked(fam, scores, path, sizes)
        if fam.cells[0].n_nodes == nodes:
            return ranked
        frontier = [cell for cell, _ in ranked.top(beam)]
        path = path + [frontier[0]]


def _union(families: list[Family], rules: SearchSpace) -> Family:
    """One family from the single-insertion families of several beam cells, duplicates removed."""
    if len(families) == 1:
        return families[0]
    union, seen = Family("single"), set()
    for fam in families:
        union.add("single insertions", fam.cells, rules, seen)
        union.candidates += fam.candidates
        union.valid += fam.valid
        union.sampled |= fam.sampled
    return union


def _empty_reason(rules: SearchSpace, seed: Arch) -> str:
    """Why no cell grows from `seed`: the rule that the first candidate breaks."""
    _, adjs = next(_wirings(seed))
    probe = Arch(_with_op(seed, 1, middle_types(rules)[0]), adjs[0])
    reason = rules.validate(probe, probe.n_nodes) or "every candidate loses its new node when pruned"
    return f"no valid {seed.n_nodes + 1}-node {rules.name} cell grows from this seed (e.g. {reason})"
