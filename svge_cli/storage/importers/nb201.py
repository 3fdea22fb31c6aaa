"""NAS-Bench-201 results: a CSV table of arch strings, or the official ``.pth`` benchmark file.

Both give the same label columns: ``cifar10_valid_val`` and ``cifar10_valid_test``
(trained on CIFAR-10's train half, evaluated on its validation half and on the
test set), ``cifar10_test`` (trained on train + validation), ``params_mb`` and the
benchmark ``index``, all for the 200-epoch schedule, averaged over seeds.

The ``.pth`` layout (NAS-Bench-201 v1.0 ``NAS-Bench-201-v1_0-e61699.pth`` and v1.1
``NAS-Bench-201-v1_1-096897.pth``, as read by the official ``nas_201_api``): a dict
with ``meta_archs`` (arch strings in index order) and ``arch2infos`` (index ->
{"less": 12-epoch results, "full": 200-epoch results}).  Each results dict holds
``dataset_seed`` (dataset -> seeds) and ``all_results`` keyed by (dataset, seed);
one trial holds ``epochs``, ``params`` and ``eval_acc1es`` keyed like
``"x-valid@199"``.  This reader needs no nas_201_api: everything in the file is
plain dicts, lists and tensors.
"""

from __future__ import annotations

import csv
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces import SearchSpace
from svge_cli.storage.importers._common import LabelColumns, drop_repeats, make_dataset, parse_native, read_lines, where

ARCH_COLUMN = "arch"
#: label column -> (NAS-Bench-201 dataset, evaluation set)
ACCURACIES = {
    "cifar10_valid_val": ("cifar10-valid", "x-valid"),
    "cifar10_valid_test": ("cifar10-valid", "ori-test"),
    "cifar10_test": ("cifar10", "ori-test"),
}
PARAMS_COLUMN = "params_mb"
PARAMS_DATASETS = ("cifar10-valid", "cifar10")  # same 10-class network; the first present counts
FULL_KEYS = ("full", "200")  # the 200-epoch results ("200" where a file uses NATS-style keys)
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80  # first byte of a protocol >= 2 pickle (torch's legacy format)


# ---------------------------------------------------------------- CSV


def read_arch_csv(path: Path, space: SearchSpace, node_limit: int | None = None) -> Dataset:
    """A CSV with a header, an ``arch`` column of native strings and numeric label columns.

    This is the layout of ``nb201_cifar10.csv`` (index, arch, cifar10_valid_val,
    cifar10_valid_test, cifar10_test, params_mb); columns are found by header
    name, so their order and any extra numeric columns do not matter.

    Args:
        path: the CSV file.
        space: the space the ``arch`` strings are parsed in.
        node_limit: the largest node count a cell may have; None keeps the space's own limit.

    Returns:
        The cells, each once, with one float label column per numeric field besides ``arch``.
    """
    rows = csv.reader(read_lines(path))
    header = [h.strip() for h in next(rows, [])]
    if ARCH_COLUMN not in header:
        raise StoreError(f"{path}: the first line must be a CSV header with an {ARCH_COLUMN!r} column")
    col = header.index(ARCH_COLUMN)
    archs: list[Arch] = []
    labels = LabelColumns()
    for number, row in enumerate(rows, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        place = where(path, number)
        if len(row) != len(header):
            raise StoreError(f"{place}: {len(row)} fields, but the header has {len(header)}")
        archs.append(parse_native(space, row[col], place, node_limit))
        labels.add({h: v for i, (h, v) in enumerate(zip(header, row)) if i != col}, place)
    hashes = [space.hash(a) for a in archs]
    archs, hashes, columns, notes = drop_repeats(archs, hashes, labels.arrays(), labels.places)
    ds = make_dataset(space, archs, columns, f"{path} (CSV)", hashes=hashes)
    ds.notes = labels.notes + notes
    return ds


# ---------------------------------------------------------------- .pth


def read_nb201_pth(path: Path, space: SearchSpace, trust_pickle: bool = False) -> Dataset:
    """Every cell of an official NAS-Bench-201 file, with seed-mean final-epoch accuracies.

    Args:
        path: the official ``.pth`` benchmark file.
        space: the NB201 space the ``meta_archs`` strings are parsed in.
        trust_pickle: whether to unpickle the file fully, running any code it carries; False
            reads only plain data and tensors.

    Returns:
        All cells in benchmark index order, with the accuracy columns, ``params_mb`` and ``index``;
        NaN where the file lacks a cell's results.
    """
    data = _load_pth(path, trust_pickle)
    meta = _field(data, "meta_archs", list, path)
    infos = _field(data, "arch2infos", dict, path)
    archs = [parse_native(space, str(s), f"{path}: meta_archs[{i}]") for i, s in enumerate(meta)]
    columns = {name: np.full(len(archs), np.nan) for name in (*ACCURACIES, PARAMS_COLUMN)}
    for index, info in infos.items():
        if not isinstance(index, int) or not 0 <= index < len(archs):
            raise StoreError(f"{path}: arch2infos has key {index!r}, not an index into meta_archs")
        full = _full_results(info, f"{path}: arch2infos[{index}]")
        for name, (dataset, setname) in ACCURACIES.items():
            columns[name][index] = _final_accuracy(full, dataset, setname)
        columns[PARAMS_COLUMN][index] = _params(full)
    labels = {"index": np.arange(len(archs), dtype=np.float64), **columns}
    return make_dataset(space, archs, labels, f"{path} (NAS-Bench-201 .pth, {len(infos)} evaluated)")


def _load_pth(path: Path, trust_pickle: bool) -> Any:
    """Unpickle the file, after checking it is a torch zip or legacy pickle file.

    The benchmark holds plain dicts, lists, numbers, strings and tensors, which
    torch's restricted unpickler (``weights_only=True``) reads in both the zip and
    the legacy format; anything else in a file is refused unless `trust_pickle`,
    because full unpickling runs whatever code a downloaded file carries.
    """
    with path.open("rb") as f:
        head = f.read(4)
    is_zip = head == ZIP_MAGIC
    if not is_zip and (not head or head[0] != PICKLE_PROTO):
        raise StoreError(f"{path}: not a PyTorch .pth file (neither a zip archive nor a pickle)")
    import torch  # deferred: importing torch takes a second and only this format needs it

    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=is_zip)
    except pickle.UnpicklingError as e:
        if trust_pickle:
            raise StoreError(f"{path}: cannot be read as a NAS-Bench-201 file (UnpicklingError: {e})") from None
        found = next(iter(re.findall(r"GLOBAL ([\w.]+)", str(e))), "")
        raise StoreError(
            f"{path}: holds Python objects beyond plain data and tensors{f' ({found})' if found else ''}; "
            "if you trust its source, pass --trust-pickle (full unpickling runs code the file "
            "carries)"
        ) from None
    except Exception as e:  # unpickling damaged or foreign files fails in many ways
        raise StoreError(f"{path}: cannot be read as a NAS-Bench-201 file ({type(e).__name__}: {e})") from None


def _field(obj: Any, key: Any, kind: type, place: Any) -> Any:
    """obj[key], which must exist and be of `kind`; StoreError describing the surprise otherwise."""
    if not isinstance(obj, dict) or key not in obj:
        raise StoreError(f"{place}: no {key!r} entry; not a NAS-Bench-201 v1.0/v1.1 file")
    value = obj[key]
    if not isinstance(value, kind):
        raise StoreError(f"{place}: {key!r} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def _full_results(info: Any, place: str) -> dict:
    for key in FULL_KEYS:
        if isinstance(info, dict) and key in info:
            full = _field(info, key, dict, place)
            _field(full, "all_results", dict, f"{place}[{key!r}]")
            _field(full, "dataset_seed", dict, f"{place}[{key!r}]")
            return full
    raise StoreError(f"{place}: no 200-epoch ('full') results; not a NAS-Bench-201 v1.0/v1.1 file")


def _trials(full: dict, dataset: str) -> list[dict]:
    """The per-seed result dicts of one dataset (empty when the file has none)."""
    trials = []
    for seed in full["dataset_seed"].get(dataset, []):
        trials.append(_field(full["all_results"], (dataset, seed), dict, f"results of {dataset}"))
    return trials


def _final_accuracy(full: dict, dataset: str, setname: str) -> float:
    """Mean over seeds of the top-1 accuracy after the last epoch; NaN when the file lacks it."""
    accs = []
    for trial in _trials(full, dataset):
        epochs = _field(trial, "epochs", int, f"a {dataset} trial")
        acc = _field(trial, "eval_acc1es", dict, f"a {dataset} trial").get(f"{setname}@{epochs - 1}")
        if acc is not None:
            accs.append(float(acc))
    return float(np.mean(accs)) if accs else math.nan


def _params(full: dict) -> float:
    for dataset in PARAMS_DATASETS:
        trials = _trials(full, dataset)
        if trials:
            return float(np.mean([float(t.get("params", math.nan)) for t in trials]))
    return math.nan
