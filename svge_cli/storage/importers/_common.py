"""What every importer shares: reading text, checking cells, label columns, the final Dataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces import SearchSpace
from svge_cli.spaces.nb201 import NB201Space

_TEXT = object()  # marks a value that is not a number
_NOT_FINITE = object()  # marks inf, -inf, nan or a number too large for a float: stored as unknown


def where(path: Path, line: int) -> str:
    """How messages name a line of a file."""
    return f"{path}, line {line}"


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; StoreError when it is missing or binary."""
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise StoreError(f"{path}: not UTF-8 text") from None


def check_cell(space: SearchSpace, arch: Arch, place: str, node_limit: int | None = None) -> Arch:
    """The canonical cell, or StoreError naming the place and the broken rule."""
    try:
        return space.check(arch, node_limit)
    except ArchError as e:
        raise StoreError(f"{place}: {e}") from None


def parse_native(space: SearchSpace, text: str, place: str, node_limit: int | None = None) -> Arch:
    """Parse and check a native string, with the place in any error."""
    try:
        arch = space.parse_native(text)
    except ArchError as e:
        raise StoreError(f"{place}: {e}") from None
    return check_cell(space, arch, place, node_limit)


def _number(value: Any) -> Any:
    """float for finite numbers and numeric text, NaN for missing or empty, _NOT_FINITE, or _TEXT."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return _TEXT
    try:
        number = float(value)
    except ValueError:
        return _TEXT
    except OverflowError:  # an integer beyond float range
        return _NOT_FINITE
    return number if math.isfinite(number) else _NOT_FINITE


class LabelColumns:
    """Label values gathered row by row.

    A key becomes a float64 column when its values are numbers (missing -> NaN);
    a key whose values are all text (names, notes) is left out; a key that mixes
    numbers and text is an error, since a typo would otherwise silently drop or
    corrupt a column.  Values that are no finite number (inf, nan, 1e400) are
    stored as unknown (NaN).  What was left out or made unknown is said in
    `notes`, which `arrays` fills.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._places: list[str] = []
        self.notes: list[str] = []

    @property
    def places(self) -> list[str]:
        return list(self._places)

    def add(self, values: dict[str, Any], place: str) -> None:
        self._rows.append({k: _number(v) for k, v in values.items()})
        self._places.append(place)

    def arrays(self) -> dict[str, np.ndarray]:
        keys = dict.fromkeys(k for row in self._rows for k in row)
        out: dict[str, np.ndarray] = {}
        for key in keys:
            values = [row.get(key, math.nan) for row in self._rows]
            text = [i for i, v in enumerate(values) if v is _TEXT]
            odd = [i for i, v in enumerate(values) if v is _NOT_FINITE]
            numbers = [v for v in values if v is not _TEXT and v is not _NOT_FINITE and not math.isnan(v)]
            if text and (numbers or odd):
                raise StoreError(
                    f"{self._places[text[0]]}: {key!r} is not a number, but other rows give numbers for it"
                )
            if text:
                self.notes.append(
                    f"column {key!r} holds text, not numbers ({len(text):,} rows): left out of the labels"
                )
                continue
            out[key] = np.asarray([math.nan if v is _NOT_FINITE else v for v in values], dtype=np.float64)
            if odd:
                self.notes.append(
                    f"{len(odd):,} {key!r} values are no finite number (inf, nan or too large, first at "
                    f"{self._places[odd[0]]}): stored as unknown"
                )
        return out


def drop_repeats(
    archs: list[Arch], hashes: list[str], labels: dict[str, np.ndarray], places: list[str]
) -> tuple[list[Arch], list[str], dict[str, np.ndarray], list[str]]:
    """The rows without repeated cells, and a note on how many were dropped.

    A benchmark table holds each cell once; a repeat with the same labels is
    harmless and dropped (said in the note), a repeat with other labels is an
    error naming both lines: silently keeping either would change the benchmark.
    """
    first: dict[str, int] = {}
    keep: list[int] = []
    for i, h in enumerate(hashes):
        j = first.setdefault(h, i)
        if j == i:
            keep.append(i)
            continue
        differ = [k for k, col in labels.items() if not _same(col[i], col[j])]
        if differ:
            k = differ[0]
            raise StoreError(
                f"{places[i]} repeats the cell of {places[j].rsplit(', ', 1)[-1]} with another {k} "
                f"({labels[k][i]:g} vs {labels[k][j]:g}); keep one row per cell"
            )
    dropped = len(hashes) - len(keep)
    notes = [f"{dropped:,} repeated rows of cells listed earlier with the same labels were skipped"] if dropped else []
    return ([archs[i] for i in keep], [hashes[i] for i in keep], {k: v[keep] for k, v in labels.items()}, notes)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def make_dataset(
    space: SearchSpace,
    archs: list[Arch],
    labels: dict[str, np.ndarray],
    source: str,
    split: np.ndarray | None = None,
    hashes: list[str] | None = None,
) -> Dataset:
    """The Dataset of checked cells: hashes from the space, plus NB201's equivalence classes."""
    if not archs:
        raise StoreError(f"{source}: no architectures in the file")
    labels = dict(labels)
    if isinstance(space, NB201Space):
        labels["equiv_class"] = space.equivalence_classes(archs).astype(np.float64)
    hashes = hashes if hashes is not None else [space.hash(a) for a in archs]
    max_nodes = max(space.max_nodes, max(a.n_nodes for a in archs))
    return Dataset.from_archs(space.name, archs, hashes, max_nodes, labels=labels, split=split, source=source)
