"""CIFAR-10 from a local folder in the official python-pickle batch format; never downloaded.

The folder holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (the
content of ``cifar-10-python.tar.gz``, usually ``cifar-10-batches-py/``): each a
pickled dict with ``b"data"``, a uint8 array of shape (N, 3072) (1024 red, then
green, then blue values, rows of 32), and ``b"labels"``, N class indices.
Any number of ``data_batch_*`` files is accepted, so small test sets work too.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from svge_cli.errors import SvgeError

#: per-channel mean and std of the CIFAR-10 training images (0..1 scale)
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
SIDE = 32
PIXELS = 3 * SIDE * SIDE


@dataclass
class Cifar:
    train_x: np.ndarray  # (N, 3, 32, 32) uint8
    train_y: np.ndarray  # (N,) int64
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def classes(self) -> int:
        return int(max(self.train_y.max(initial=0), self.test_y.max(initial=0))) + 1


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise SvgeError(f"{path}: not a CIFAR-10 python batch ({e.__class__.__name__}: {e})") from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise SvgeError(f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise SvgeError(f"{path}: b'data' must be uint8 of shape (N, {PIXELS}), got {data.dtype} {data.shape}")
    if (
        labels.ndim != 1
        or len(labels) != len(data)
        or not np.issubdtype(labels.dtype, np.integer)
        or (len(labels) and labels.min() < 0)
    ):
        raise SvgeError(f"{path}: b'labels' must be {len(data)} non-negative class indices")
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def load_cifar(folder: str | Path) -> Cifar:
    """Every training batch and the test batch of `folder`; SvgeError naming what is missing or wrong."""
    root = Path(folder)
    if not root.is_dir():
        raise SvgeError(f"{folder}: no such folder (expected CIFAR-10's python batches: data_batch_1..5, test_batch)")
    if (root / "cifar-10-batches-py").is_dir() and not (root / "test_batch").exists():
        root = root / "cifar-10-batches-py"
    train_files = sorted(root.glob("data_batch_*"), key=lambda p: (len(p.name), p.name))
    if not train_files or not (root / "test_batch").is_file():
        raise SvgeError(
            f"{folder}: no CIFAR-10 python batches here (need data_batch_1..5 and test_batch; nothing is downloaded)"
        )
    parts = [_read_batch(p) for p in train_files]
    test_x, test_y = _read_batch(root / "test_batch")
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    if len(train_x) == 0 or len(test_x) == 0:
        raise SvgeError(f"{folder}: the batches hold no images")
    return Cifar(train_x, train_y, test_x, test_y)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> normalised float32 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def write_batch(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a batch in the official format (used by tests and examples to make tiny data sets)."""
    data = np.asarray(images, dtype=np.uint8).reshape(len(images), PIXELS)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": [int(v) for v in labels], b"batch_label": b"svge"}, f)
