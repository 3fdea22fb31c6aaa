"""D-VAE's ENAS text (``data/final_structures6.txt``): one ``[[...]], score`` per line.

The import reproduces D-VAE's ``load_ENAS_graphs`` exactly, so results can be
compared with published ones: the first `burn_in` lines are skipped, the rest are
shuffled with ``random.Random(0).shuffle`` and the first ``int(0.9 * n)`` of the
shuffled list are the training set (17,118 / 1,902 for the 20,020-line file).
The Dataset keeps that shuffled order; the split column marks train and test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import SPLIT_TEST, SPLIT_TRAIN, Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces.enas import EnasSpace
from svge_cli.storage.importers._common import check_cell, make_dataset, read_lines, where

BURN_IN = 1000
SHUFFLE_SEED = 0
TRAIN_SHARE = 0.9
LABEL = "ws_acc"  # weight-sharing validation accuracy on CIFAR-10


def dvae_order(n: int, seed: int = SHUFFLE_SEED) -> list[int]:
    """The permutation D-VAE's ``random.Random(seed).shuffle`` applies to any list of n items.

    The shuffle only looks at the list's length, so shuffling indices gives the
    same order as shuffling D-VAE's (graph, score) pairs.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def read_dvae_enas(path: Path, space: EnasSpace, burn_in: int = BURN_IN, node_limit: int | None = None) -> Dataset:
    """Cells and scores after the burn-in, in D-VAE's shuffled order, with its 90/10 split.

    Args:
        path: the D-VAE text file, one ``[[...]], score`` row per line.
        space: the ENAS space the rows are parsed into.
        burn_in: how many leading lines to skip (D-VAE's default is 1000); StoreError when negative.
        node_limit: the largest node count a cell may have; None keeps the space's own limit.

    Returns:
        The cells with their ``ws_acc`` scores, the first 90% of the shuffled rows marked as training.
    """
    if burn_in < 0:
        raise StoreError(f"burn-in must be >= 0, got {burn_in}")
    lines = read_lines(path)
    archs: list[Arch] = []
    scores: list[float] = []
    for number, line in enumerate(lines, start=1):
        if number <= burn_in or not line.strip():
            continue
        arch, score = _parse_line(space, line, where(path, number), node_limit)
        archs.append(arch)
        scores.append(score)
    if not archs:
        raise StoreError(f"{path}: no rows after the burn-in of {burn_in} lines (the file has {len(lines)})")
    order = dvae_order(len(archs))
    split = np.full(len(archs), SPLIT_TEST, dtype=np.int8)
    split[: int(len(archs) * TRAIN_SHARE)] = SPLIT_TRAIN
    labels = {LABEL: np.asarray(scores, dtype=np.float64)[order]}
    source = f"{path} (D-VAE ENAS, burn-in {burn_in}, D-VAE shuffle)"
    return make_dataset(space, [archs[i] for i in order], labels, source, split=split)


def _parse_line(space: EnasSpace, line: str, place: str, node_limit: int | None) -> tuple[Arch, float]:
    try:
        item = json.loads(f"[{line}]")
    except (json.JSONDecodeError, RecursionError):
        item = None
    if not isinstance(item, list) or len(item) != 2 or type(item[1]) not in (int, float):
        raise StoreError(f"{place}: expected a row and its score, like [[1], [4, 0], ...], 0.7302")
    try:
        arch = space.from_row(item[0])
    except ArchError as e:
        raise StoreError(f"{place}: {e}") from None
    return check_cell(space, arch, place, node_limit), float(item[1])
