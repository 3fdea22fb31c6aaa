"""CIFAR-10 from a local folder in the official python-pickle batch format; never downloaded.

The folder holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (the
content of ``cifar-10-python.tar.gz``, usually ``cifar-10-batches-py/``): each a
pickled dict with ``b"data"``, a uint8 array of shape (N, 3072) (1024 red, then
green, then blue values, rows of 32), and ``b"labels"``, N class indices.
Any number of ``data_batch_*`` files is accepted, so small test sets work too.

A pickle can name any importable callable and have it run while loading, so the
batches are read by `_BatchUnpickler`, which resolves only the few globals a
batch needs and refuses every other one before anything is called.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """numpy's array reconstruction under both module paths: numpy 1.x pickles say
    ``numpy.core``, numpy 2.x ones ``numpy._core``. The objects are taken from what
    this numpy's own arrays reduce to, so no module is imported by name."""
    array = np.zeros(1, np.uint8)
    reconstruct = array.__reduce__()[0]
    frombuffer = array.__reduce_ex__(5)[0]
    scalar = np.int64(0).__reduce__()[0]
    found: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{core}.multiarray", "scalar")] = scalar
        found[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return found


class _Refused(pickle.UnpicklingError):
    """The stream asks for something a batch never holds (the pickle itself may be well formed)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """How protocol-2 pickles from Python 3 spell a bytes object: ``_codecs.encode(text, "latin1")``.

    Only that spelling is let through (no codec is looked up by a name from the file).
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"it calls _codecs.encode with {encoding!r}, not a bytes object's 'latin1'")
    return text.encode("latin-1")


class _BatchUnpickler(pickle.Unpickler):
    """Admits dicts, lists, tuples, bytes, str, numbers and numpy arrays, nothing else.

    Plain containers and scalars need no globals; every global a stream names goes
    through `find_class`, which knows only numpy's array reconstruction and the
    Latin-1 bytes encoding, so a ``__reduce__`` payload (``os.system``,
    ``builtins.eval`` ...) is refused before it can be called.
    """

    _ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"it names {module}.{name}, which a CIFAR-10 batch never holds") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("it refers to objects outside the file")


def _unpickle(path: Path) -> Any:
    """The batch's object, without running anything the file asks for."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SvgeError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise SvgeError(f"{path}: refused, not a plain CIFAR-10 python batch ({e})") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
    ) as e:
        raise SvgeError(f"{path}: not a CIFAR-10 python batch ({e.__class__.__name__}: {e})") from None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(path)
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise SvgeError(f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')")
    data = obj[b"data"]
    try:
        labels = np.asarray(obj[b"labels"])
    except (ValueError, TypeError):
        raise SvgeError(f"{path}: b'labels' must be a list of class indices") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise SvgeError(f"{path}: b'data' must be uint8 of shape (N, {PIXELS}), got {_describe(data)}")
    if (
        labels.ndim != 1
        or len(labels) != len(data)
        or not np.issubdtype(labels.dtype, np.integer)
        or (len(labels) and labels.min() < 0)
    ):
        raise SvgeError(f"{path}: b'labels' must be {len(data)} non-negative class indices")
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def _describe(value: Any) -> str:
    return f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__


def batch_files(folder: str | Path) -> tuple[list[Path], Path]:
    """(training batches in order, test batch) of a CIFAR-10 folder; SvgeError when there are none."""
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
    return train_files, root / "test_batch"


def load_cifar(folder: str | Path) -> Cifar:
    """Every training batch and the test batch of `folder`; SvgeError naming what is missing or wrong."""
    train_files, test_file = batch_files(folder)
    parts = [_read_batch(p) for p in train_files]
    test_x, test_y = _read_batch(test_file)
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
    """Write a batch in the official format (used by tests and examples to make tiny data sets).

    Args:
        path: the file to create or overwrite.
        images: N images of 3 x 32 x 32 pixel values 0..255, channel-first (anything that reshapes to
            (N, 3072) as uint8).
        labels: N class indices, one per image.
    """
    data = np.asarray(images, dtype=np.uint8).reshape(len(images), PIXELS)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": [int(v) for v in labels], b"batch_label": b"svge"}, f)
