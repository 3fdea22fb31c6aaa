"""JSON lines of cells with labels: ``{"space": ..., "ops": [...], "adj": [[...]], "acc": 0.93, ...}``.

Every key besides the cell's own (space, ops, adj) and ``hash`` becomes a label
column.  A ``hash`` key is checked against the space's hash, so a file whose
labels belong to other cells (or another hashing convention) is refused rather
than imported wrong.
"""

from __future__ import annotations

from pathlib import Path

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces import SearchSpace
from svge_cli.storage.archtext import parse_json_arch
from svge_cli.storage.importers._common import LabelColumns, check_cell, drop_repeats, make_dataset, read_lines, where

HASH_KEY = "hash"


def read_jsonl(path: Path, space: SearchSpace, node_limit: int | None = None) -> Dataset:
    """Every JSON line of the file as a cell with its numeric labels; blank and # lines skipped.

    Args:
        path: the JSON lines file.
        space: the space every line's cell must belong to; a line naming another space is refused.
        node_limit: the largest node count a cell may have; None keeps the space's own limit.

    Returns:
        The cells, each once, with one float label column per numeric extra key (text keys left out).
    """
    archs: list[Arch] = []
    hashes: list[str] = []
    labels = LabelColumns()
    for number, line in enumerate(read_lines(path), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        place = where(path, number)
        try:
            arch, _, extra = parse_json_arch(text, space)
        except ArchError as e:
            raise StoreError(f"{place}: {e}") from None
        arch = check_cell(space, arch, place, node_limit)
        digest = space.hash(arch)
        given = extra.pop(HASH_KEY, None)
        if given is not None and str(given) != digest:
            raise StoreError(f"{place}: the file's hash {given} is not the cell's {space.name} hash {digest}")
        archs.append(arch)
        hashes.append(digest)
        labels.add(extra, place)
    archs, hashes, columns, notes = drop_repeats(archs, hashes, labels.arrays(), labels.places)
    ds = make_dataset(space, archs, columns, f"{path} (JSON lines)", hashes=hashes)
    ds.notes = labels.notes + notes
    return ds
