"""Where a command's architectures come from: imported tables, enumerations, samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from svge_cli import artifacts
from svge_cli.arch import Arch
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError, SvgeError
from svge_cli.memory import ARCH_BYTES, ensure_fits
from svge_cli.spaces import SearchSpace
from svge_cli.spaces.base import draw_cells
from svge_cli.storage import store
from svge_cli.storage.workspace import Workspace

DEFAULT_SPLIT_SEED = 0
TEST_SHARE = 0.1


def enumeration(space: SearchSpace, ws: Workspace) -> Dataset:
    """The whole space as a dataset, computed once and cached in the workspace."""
    if not space.enumerable:
        raise SvgeError(f"space {space.name} is too large to enumerate; use `svge data sample {space.name}`")
    path = ws.enumeration_path(space.name)
    if path.exists():
        try:
            return store.load_dataset(path, space.name)
        except StoreError:
            pass  # a damaged cache is rebuilt, never trusted
    ds = space.enumerate_dataset()
    ds.source = f"enumeration of {space.name}"
    store.save_dataset(path, ds)
    return ds


def sample_cells(space: SearchSpace, ws: Workspace, n: int, seed: int) -> list[Arch]:
    """`n` cells drawn uniformly: from the cached enumeration where the space has one.

    Args:
        space: the space to draw from.
        ws: the workspace whose cached enumeration is used (and built on first use).
        n: how many cells to draw; from an enumeration, all of it when it holds fewer.
        seed: seeds the draw, so the same seed gives the same cells.

    Returns:
        The drawn cells: distinct ones from an enumerable space, ``space.sample`` draws otherwise.
    """
    if not space.enumerable:
        ensure_fits(n * (ARCH_BYTES + space.max_nodes**2), f"sampling {n:,} {space.name} cells", "ask for fewer")
        return space.sample(n, seed)
    return draw_cells(enumeration(space, ws), n, seed)


def embedded_default(space: SearchSpace, ws: Workspace) -> Dataset:
    """The training set used when nothing was imported: the enumerated space, or ENAS samples."""
    ds = enumeration(space, ws) if space.enumerable else space.default_dataset()
    if ds.split is None:
        ds.split = random_split(len(ds), DEFAULT_SPLIT_SEED)
    return ds


def workspace_dataset(space: SearchSpace, ws: Workspace) -> Dataset | None:
    path = ws.dataset_path(space.name)
    return store.load_dataset(path, space.name) if path.exists() else None


def training_dataset(space: SearchSpace, ws: Workspace, path: str | None = None) -> Dataset:
    """An explicit file, else the workspace's imported dataset, else the embedded default.

    Args:
        space: the space the dataset must hold; a file of another space is refused.
        ws: the workspace whose imported dataset or cached enumeration is used when `path` is None.
        path: an svge dataset file (or "-" for stdin) to train on; None falls back to the workspace.

    Returns:
        The dataset, with the seeded 90/10 train/test split filled in when it had none.
    """
    if path is not None:
        ds = store.load_dataset(path, space.name)
    else:
        ds = workspace_dataset(space, ws) or embedded_default(space, ws)
    if ds.split is None:
        ds.split = random_split(len(ds), DEFAULT_SPLIT_SEED)
    return ds


def random_split(n: int, seed: int) -> np.ndarray:
    """A seeded 90/10 split: the last tenth of a permutation is the test set."""
    split = np.full(n, artifacts.SPLIT_TRAIN, dtype=np.int8)
    perm = np.random.default_rng(seed).permutation(n)
    split[perm[n - int(round(n * TEST_SHARE)) :]] = artifacts.SPLIT_TEST
    return split


def summarize(ds: Dataset) -> dict[str, Any]:
    """Counts, node and edge statistics, split sizes and label ranges of a dataset."""
    edges = ds.adj.reshape(len(ds), -1).sum(axis=1)
    out: dict[str, Any] = {
        "space": ds.space,
        "rows": len(ds),
        "source": ds.source,
        "unique_hashes": int(len(np.unique(ds.hashes))),
        "nodes": [int(ds.n_nodes.min()), int(ds.n_nodes.max())] if len(ds) else [0, 0],
        "edges": [int(edges.min()), int(edges.max())] if len(ds) else [0, 0],
        "labels": {},
    }
    if ds.split is not None:
        out["split"] = {
            "train": int((ds.split == artifacts.SPLIT_TRAIN).sum()),
            "test": int((ds.split == artifacts.SPLIT_TEST).sum()),
        }
    for name, col in ds.labels.items():
        finite = col[np.isfinite(col)]
        out["labels"][name] = {
            "count": int(finite.size),
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
        }
    return out
