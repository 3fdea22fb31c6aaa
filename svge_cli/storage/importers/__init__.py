"""Benchmark files -> Datasets: the format is told from the file itself, the space is the user's.

| format     | recognised by                          | spaces | reader                        |
| ---------- | -------------------------------------- | ------ | ----------------------------- |
| tfrecord   | ``.tfrecord``                          | nb101  | nb101_tfrecord.read_nb101_tfrecord |
| nb201-pth  | zip / pickle bytes, ``.pth`` ``.pt``   | nb201  | nb201.read_nb201_pth          |
| jsonl      | first line ``{``, ``.jsonl`` ``.json`` | any    | jsonl.read_jsonl              |
| dvae-enas  | first line ``[``, ``.txt``             | enas   | dvae_enas.read_dvae_enas      |
| csv        | header with an ``arch`` field, ``.csv``| any    | nb201.read_arch_csv           |

The content decides when it is recognisable, the extension otherwise, except for
``.tfrecord`` (binary records whose first bytes say nothing).
"""

from __future__ import annotations

from pathlib import Path

from svge_cli.arch import ArchError
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage.importers.dvae_enas import BURN_IN, read_dvae_enas
from svge_cli.storage.importers.jsonl import read_jsonl
from svge_cli.storage.importers.nb201 import ARCH_COLUMN, PICKLE_PROTO, ZIP_MAGIC, read_arch_csv, read_nb201_pth

EXTENSIONS = {
    ".tfrecord": "tfrecord",
    ".pth": "nb201-pth",
    ".pt": "nb201-pth",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".txt": "dvae-enas",
}
#: formats that hold cells of one space only
FORMAT_SPACE = {"tfrecord": "nb101", "nb201-pth": "nb201", "dvae-enas": "enas"}
SNIFF_BYTES = 4096


def import_file(
    space_name: str, path: Path, *, burn_in: int = BURN_IN, node_limit: int | None = None, trust_pickle: bool = False
) -> Dataset:
    """Read a benchmark file of `space_name` cells; StoreError (one line) when it cannot.

    `burn_in` applies to D-VAE ENAS text only; `node_limit` admits larger cells
    than the space's default (ENAS with 12 layers, NB101 with 8 nodes);
    `trust_pickle` lets a .pth file hold arbitrary Python objects (see nb201._load_pth).

    Args:
        space_name: the name of the space the file's cells belong to; StoreError when unknown.
        path: the benchmark file; its format is detected from its content or extension.
        burn_in: how many leading lines of a D-VAE ENAS text file to skip.
        node_limit: the largest node count a cell may have; None keeps the space's own limit.
        trust_pickle: whether a .pth file is fully unpickled, running any code it carries.

    Returns:
        The file's cells with their label columns, in a Dataset of `space_name`.
    """
    space = _space(space_name)
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    fmt = detect_format(path)
    wanted = FORMAT_SPACE.get(fmt)
    if wanted is not None and wanted != space.name:
        raise StoreError(f"{path}: a {fmt} file holds {wanted} cells, but space {space.name} was asked for")
    if fmt == "tfrecord":
        from svge_cli.storage.importers.nb101_tfrecord import (
            read_nb101_tfrecord,  # written separately; only this format needs it
        )

        return read_nb101_tfrecord(path, space)
    if fmt == "nb201-pth":
        return read_nb201_pth(path, space, trust_pickle)
    if fmt == "dvae-enas":
        return read_dvae_enas(path, space, burn_in, node_limit)
    if fmt == "csv":
        return read_arch_csv(path, space, node_limit)
    return read_jsonl(path, space, node_limit)


def detect_format(path: Path) -> str:
    """The format name of a file (see the module table); StoreError when neither content nor name tells."""
    by_name = EXTENSIONS.get(path.suffix.lower())
    if by_name == "tfrecord":
        return by_name
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    fmt = _sniff(head) or by_name
    if fmt is None:
        raise StoreError(
            f"{path}: unknown format (expected D-VAE ENAS .txt, NB201 .csv or .pth, NB101 .tfrecord, or JSON lines)"
        )
    return fmt


def _sniff(head: bytes) -> str | None:
    if head.startswith(ZIP_MAGIC) or head[:1] == bytes([PICKLE_PROTO]):
        return "nb201-pth"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if first.startswith("{"):
        return "jsonl"
    if first.startswith("["):
        return "dvae-enas"
    if ARCH_COLUMN in (field.strip() for field in first.split(",")):
        return "csv"
    return None


def _space(name: str) -> SearchSpace:
    try:
        return get_space(name)
    except ArchError as e:
        raise StoreError(str(e)) from None


__all__ = ["BURN_IN", "detect_format", "import_file"]
