"""HDF5 files for datasets, latents and checkpoints; "-" means stdin/stdout.

Layouts are documented in docs/formats.md.  Every file carries the attributes
``svge_kind`` (dataset | latents | checkpoint), ``format_version`` and ``space``,
so a file of the wrong kind, space or version is refused with one clear line.
Writes are atomic: a temporary file beside the target is renamed over it, so a
failure never leaves a partial file or destroys the previous one.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import h5py
import numpy as np

from svge_cli.artifacts import Checkpoint, Dataset, Latents
from svge_cli.atomic import atomic_path
from svge_cli.errors import StoreError

FORMAT_VERSION = 1
STDIO = "-"


# ---------------------------------------------------------------- low level


def _str_array(values: np.ndarray) -> np.ndarray:
    return np.asarray([str(v).encode() for v in values], dtype=object)


def _dec(values: np.ndarray) -> np.ndarray:
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)


def _stamp(f: h5py.File, kind: str, space: str) -> None:
    f.attrs["svge_kind"] = kind
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["space"] = space


def _write(path: str | Path, kind: str, space: str, fill: Callable[[h5py.File], None]) -> None:
    """Build the file in memory or a temp file, then publish it in one step."""
    if str(path) == STDIO:
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            _stamp(f, kind, space)
            fill(f)
        out = sys.stdout.buffer
        out.write(buf.getvalue())
        out.flush()
        return
    with atomic_path(Path(path)) as tmp:
        with h5py.File(tmp, "w") as f:
            _stamp(f, kind, space)
            fill(f)


def _read_source(path: str | Path) -> Any:
    if str(path) == STDIO:
        if sys.stdin.isatty():
            raise StoreError("expected an HDF5 file on stdin, but stdin is a terminal")
        data = sys.stdin.buffer.read()
        if not data:
            raise StoreError("stdin is empty: expected an HDF5 file")
        return io.BytesIO(data)
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{path}: no such file")
    if p.is_dir():
        raise StoreError(f"{path}: is a directory, expected an HDF5 file")
    return str(p)


def _open(path: str | Path, kind: str, space: str | None) -> h5py.File:
    src = _read_source(path)
    name = "stdin" if str(path) == STDIO else str(path)
    try:
        f = h5py.File(src, "r")
    except (OSError, ValueError) as e:
        raise StoreError(f"{name}: not a readable HDF5 file ({_unreadable_reason(e)})") from None
    try:
        got = f.attrs.get("svge_kind")
        got = got.decode() if isinstance(got, bytes) else got
        if got != kind:
            raise StoreError(
                f"{name}: is {'an svge ' + str(got) if got else 'not an svge'} file, expected an svge {kind} file"
            )
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise StoreError(f"{name}: format version {version}, this svge reads version {FORMAT_VERSION}")
        fspace = str(f.attrs.get("space"))
        if space is not None and fspace != space:
            raise StoreError(f"{name}: holds a {fspace} {kind}, but space {space} was asked for")
    except BaseException:
        f.close()
        raise
    return f


def _unreadable_reason(e: Exception) -> str:
    """HDF5's own words for the two common cases, a cut-off file and a file of another kind."""
    text = str(e)
    if "truncated" in text:
        return "truncated: shorter than its header says"
    if "signature not found" in text:
        return "no HDF5 signature"
    return e.__class__.__name__


def peek(path: str | Path) -> tuple[str, str]:
    """(kind, space) of an svge file on disk, without loading it."""
    try:
        with h5py.File(_read_source(path), "r") as f:
            return str(f.attrs.get("svge_kind", "")), str(f.attrs.get("space", ""))
    except (OSError, ValueError):
        raise StoreError(f"{path}: not a readable HDF5 file") from None


def _numbers(f: h5py.File, name: str, path: str | Path, kinds: str) -> np.ndarray:
    """Dataset `name` as an array, refused when it holds strings or other non-numbers (a hand-made file)."""
    values = f[name][()]
    if not isinstance(values, np.ndarray) or values.dtype.kind not in kinds:
        dtype = np.asarray(values).dtype
        held = "strings" if dtype.kind in "OSU" else f"{dtype} values"
        raise StoreError(f"{path}: /{name} holds {held}, not {'numbers' if 'f' in kinds else 'integers'}")
    return values


def _guard(name: str, fn: Callable[[], Any]) -> Any:
    """Turn a truncated or damaged file's low-level errors into one clear line."""
    try:
        return fn()
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise StoreError(f"{name}: damaged or incomplete svge file ({e})") from None


# ---------------------------------------------------------------- datasets


def save_dataset(path: str | Path, ds: Dataset) -> None:
    def fill(f: h5py.File) -> None:
        f.attrs["source"] = ds.source
        f.create_dataset("ops", data=ds.ops.astype(np.int8), compression="gzip")
        f.create_dataset("adj", data=ds.adj.astype(np.uint8), compression="gzip")
        f.create_dataset("n_nodes", data=ds.n_nodes.astype(np.int16))
        f.create_dataset("hash", data=_str_array(ds.hashes), dtype=h5py.string_dtype())
        g = f.create_group("labels")
        for k, v in ds.labels.items():
            g.create_dataset(k, data=np.asarray(v, dtype=np.float64))
        if ds.split is not None:
            f.create_dataset("split", data=ds.split.astype(np.int8))

    _write(path, "dataset", ds.space, fill)


def load_dataset(path: str | Path, space: str | None = None) -> Dataset:
    name = str(path)

    def read() -> Dataset:
        with _open(path, "dataset", space) as f:
            return Dataset(
                str(f.attrs["space"]),
                f["ops"][()],
                f["adj"][()],
                f["n_nodes"][()],
                _dec(f["hash"][()]),
                {k: f["labels"][k][()] for k in f["labels"]},
                f["split"][()] if "split" in f else None,
                str(f.attrs.get("source", "")),
            )

    return _guard(name, read)


# ---------------------------------------------------------------- latents


def save_latents(path: str | Path, lat: Latents) -> None:
    def fill(f: h5py.File) -> None:
        f.attrs["checkpoint"] = lat.checkpoint
        f.create_dataset("mu", data=lat.mu.astype(np.float32))
        f.create_dataset("logvar", data=lat.logvar.astype(np.float32))
        f.create_dataset("hash", data=_str_array(lat.hashes), dtype=h5py.string_dtype())
        if lat.ops is not None:
            f.create_dataset("ops", data=lat.ops.astype(np.int8))
            f.create_dataset("adj", data=lat.adj.astype(np.uint8))
            f.create_dataset("n_nodes", data=lat.n_nodes.astype(np.int16))

    _write(path, "latents", lat.space, fill)


def load_latents(path: str | Path, space: str | None = None) -> Latents:
    def read() -> Latents:
        with _open(path, "latents", space) as f:
            has = "ops" in f
            return Latents(
                str(f.attrs["space"]),
                _numbers(f, "mu", path, "fiu"),
                _numbers(f, "logvar", path, "fiu"),
                _dec(f["hash"][()]),
                str(f.attrs.get("checkpoint", "")),
                _numbers(f, "ops", path, "iu") if has else None,
                _numbers(f, "adj", path, "iub") if has else None,
                _numbers(f, "n_nodes", path, "iu") if has else None,
            )

    lat = _guard(str(path), read)
    if lat.mu.ndim != 2 or lat.mu.shape != lat.logvar.shape or len(lat.hashes) != len(lat.mu):
        raise StoreError(f"{path}: latents have inconsistent shapes")
    if not np.isfinite(lat.mu).all():
        raise StoreError(f"{path}: latents contain NaN or infinite values")
    return lat


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, ck: Checkpoint) -> None:
    def fill(f: h5py.File) -> None:
        f.attrs["config"] = json.dumps(ck.config, sort_keys=True)
        f.attrs["epoch"] = ck.epoch
        f.attrs["history"] = json.dumps(ck.history)
        f.attrs["meta"] = json.dumps(ck.meta, sort_keys=True)
        f.attrs["fingerprint"] = ck.fingerprint()
        g = f.create_group("state")
        for k, v in ck.state.items():
            g.create_dataset(k, data=v)
        a = f.create_group("arrays")
        for k, v in ck.arrays.items():
            a.create_dataset(k, data=v)
        if ck.optimizer:
            f.create_dataset("optimizer", data=np.void(ck.optimizer))

    _write(path, "checkpoint", ck.space, fill)


def load_checkpoint(path: str | Path, space: str | None = None, with_optimizer: bool = False) -> Checkpoint:
    """Read a checkpoint file; StoreError (one line) when it is missing, damaged or of another kind.

    Args:
        path: the checkpoint file, or "-" to read it from stdin.
        space: the space the checkpoint must be of; None accepts any.
        with_optimizer: whether to load the saved optimizer state; when False it is left empty.

    Returns:
        The checkpoint: config, weights, epoch, history, extra arrays and meta.
    """

    def read() -> Checkpoint:
        with _open(path, "checkpoint", space) as f:
            return Checkpoint(
                str(f.attrs["space"]),
                json.loads(f.attrs["config"]),
                {k: f["state"][k][()] for k in f["state"]},
                int(f.attrs["epoch"]),
                json.loads(f.attrs["history"]),
                bytes(f["optimizer"][()].tobytes()) if with_optimizer and "optimizer" in f else b"",
                {k: f["arrays"][k][()] for k in f["arrays"]},
                json.loads(f.attrs.get("meta", "{}")),
            )

    return _guard(str(path), read)


def write_text_lines(path: str, lines: Iterable[str]) -> None:
    """Write lines to stdout, or atomically to a file (the old file survives a failure)."""
    if path == "-":
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    with atomic_path(Path(path)) as tmp, open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
