"""NAS-Bench-101 ``.tfrecord`` files (``nasbench_only108``, ``nasbench_full``) -> Dataset, without TensorFlow.

TFRecord framing, per record: uint64 little-endian data length, uint32 masked
CRC-32C of those 8 bytes, the data, uint32 masked CRC-32C of the data.  The
length CRC is checked, which tells a file that is not a TFRecord from its first
12 bytes; data CRCs are not (a pure-Python CRC over the 0.5 GB file would cost
minutes), but every record is parsed strictly.

Record data is JSON ``[module_hash, epochs, adjacency, operations, metrics]``:
the adjacency as a flattened string of ``0``/``1``, the operations
comma-separated, the metrics a base64 ``ModelMetrics`` protobuf
(``nasbench/lib/model_metrics.proto``), decoded here by hand:

    ModelMetrics:   1 evaluation_data (repeated EvaluationData), 2 trainable_parameters (int32),
                    3 total_time (double)
    EvaluationData: 1 current_epoch, 2 training_time, 3 train_accuracy, 4 validation_accuracy,
                    5 test_accuracy (doubles), 6 checkpoint_path (string)

Each cell was trained three times per epoch budget.  Label columns, for the
chosen budget E (108 by default): ``val_acc_E`` and ``test_acc_E`` (mean over
repeats of the final evaluation's accuracies), ``params`` and ``train_seconds``
(mean final training time).  The module hash of the file is kept as the
dataset's hash and must equal svge's own NAS-Bench-101 hash of the cell.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.errors import StoreError
from svge_cli.spaces import SearchSpace
from svge_cli.spaces.nb101_hash import hash_arrays
from svge_cli.storage.importers._common import check_cell, make_dataset

DEFAULT_EPOCHS = 108
HEADER = struct.Struct("<QI")  # data length, masked CRC-32C of the length bytes
FOOTER_BYTES = 4
CRC_MASK_DELTA = 0xA282EAD8
CASTAGNOLI = 0x82F63B78  # reversed CRC-32C polynomial
# protobuf field numbers (model_metrics.proto)
EVALUATION_DATA, TRAINABLE_PARAMETERS = 1, 2
TRAINING_TIME, VALIDATION_ACCURACY, TEST_ACCURACY = 2, 4, 5
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class ProtoError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


# ---------------------------------------------------------------- TFRecord framing


@lru_cache(maxsize=1)
def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + CRC_MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, data) of each record; StoreError for a non-TFRecord or truncated file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory, expected a .tfrecord file") from None
    with f:
        offset = 0
        while header := f.read(HEADER.size):
            if len(header) < HEADER.size:
                raise StoreError(f"{path}: truncated TFRecord: the record header at byte {offset} is cut short")
            length, length_crc = HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise StoreError(f"{path}: not a TFRecord file (bad record header at byte {offset})")
            data = f.read(length)
            if len(data) < length or len(f.read(FOOTER_BYTES)) < FOOTER_BYTES:
                raise StoreError(f"{path}: truncated TFRecord: the record at byte {offset} is cut short")
            yield offset, data
            offset += HEADER.size + length + FOOTER_BYTES


# ---------------------------------------------------------------- protobuf


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("a varint is cut short")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoError("a varint is longer than 10 bytes")


def proto_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field: an int for varints, raw bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (FIXED64, FIXED32, LENGTH_DELIMITED):
            if wire == LENGTH_DELIMITED:
                size, pos = _varint(buf, pos)
            else:
                size = 8 if wire == FIXED64 else 4
            value, pos = buf[pos : pos + size], pos + size
            if pos > len(buf):
                raise ProtoError(f"field {number} is cut short")
        else:
            raise ProtoError(f"field {number} has unsupported wire type {wire}")
        if number == 0:
            raise ProtoError("field number 0 is not allowed")
        yield number, wire, value


def _double(number: int, wire: int, value: int | bytes) -> float:
    if wire != FIXED64:
        raise ProtoError(f"field {number} should be a double, has wire type {wire}")
    return struct.unpack("<d", value)[0]


def _evaluation(buf: bytes) -> dict[int, float]:
    """The fields svge keeps of one EvaluationData (doubles), by field number."""
    return {
        number: _double(number, wire, value)
        for number, wire, value in proto_fields(buf)
        if number in (TRAINING_TIME, VALIDATION_ACCURACY, TEST_ACCURACY)
    }


def parse_model_metrics(buf: bytes) -> tuple[int, dict[int, float]]:
    """(trainable parameters, final evaluation) of a ModelMetrics message."""
    params, final_bytes = None, None
    for number, wire, value in proto_fields(buf):
        if number == EVALUATION_DATA:
            if wire != LENGTH_DELIMITED:
                raise ProtoError(f"evaluation_data has wire type {wire}")
            final_bytes = value  # only the last one is decoded: the official API reads it as the final one
        elif number == TRAINABLE_PARAMETERS:
            if wire != VARINT:
                raise ProtoError(f"trainable_parameters has wire type {wire}")
            params = value - (1 << 64) if value >= 1 << 63 else value  # int32 is sign-extended
    if params is None:
        raise ProtoError("trainable_parameters is missing")
    if final_bytes is None:
        raise ProtoError("evaluation_data is missing")
    final = _evaluation(final_bytes)
    missing = [
        name
        for name, number in (
            ("training_time", TRAINING_TIME),
            ("validation_accuracy", VALIDATION_ACCURACY),
            ("test_accuracy", TEST_ACCURACY),
        )
        if number not in final
    ]
    if missing:
        raise ProtoError(f"the final evaluation lacks {', '.join(missing)}")
    return params, final


# ---------------------------------------------------------------- records -> cells


@dataclass
class _Repeats:
    """The training runs of one cell at the chosen epoch budget."""

    place: str
    adjacency: str
    operations: str
    params: int
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def _row(data: bytes, place: str) -> tuple[str, int, str, str, bytes]:
    """The five fields of one record's JSON, with the metrics base64-decoded."""
    try:
        row = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StoreError(f"{place}: not a NAS-Bench-101 record (the data is not JSON)") from None
    if not (
        isinstance(row, list)
        and len(row) == 5
        and isinstance(row[0], str)
        and type(row[1]) is int
        and all(isinstance(x, str) for x in row[2:])
    ):
        raise StoreError(
            f"{place}: expected [module_hash, epochs, adjacency, operations, metrics], got {str(row)[:80]}"
        )
    try:
        metrics = base64.b64decode(row[4], validate=True)
    except binascii.Error:
        raise StoreError(f"{place}: the metrics are not valid base64") from None
    return row[0], row[1], row[2], row[3], metrics


def _gather(path: Path, epochs: int) -> dict[str, _Repeats]:
    """Records of the chosen epoch budget, grouped by module hash in file order."""
    groups: dict[str, _Repeats] = {}
    budgets: set[int] = set()
    for number, (offset, data) in enumerate(iter_records(path), start=1):
        place = f"{path}: record {number} (byte {offset})"
        module_hash, budget, adjacency, operations, metrics = _row(data, place)
        budgets.add(budget)
        if budget != epochs:
            continue
        try:
            params, final = parse_model_metrics(metrics)
        except ProtoError as e:
            raise StoreError(f"{place}: malformed ModelMetrics protobuf ({e})") from None
        group = groups.setdefault(module_hash, _Repeats(place, adjacency, operations, params))
        if (group.adjacency, group.operations) != (adjacency, operations):
            raise StoreError(f"{place}: module hash {module_hash} names a different cell than {group.place}")
        group.val.append(final[VALIDATION_ACCURACY])
        group.test.append(final[TEST_ACCURACY])
        group.seconds.append(final[TRAINING_TIME])
    if not groups:
        seen = ", ".join(str(b) for b in sorted(budgets)) or "none, the file has no records"
        raise StoreError(f"{path}: no records trained for {epochs} epochs (epoch budgets found: {seen})")
    return groups


def _cell(space: SearchSpace, group: _Repeats) -> Arch:
    """The canonical cell of a record's raw adjacency and operation strings."""
    n = math.isqrt(len(group.adjacency))
    if n * n != len(group.adjacency) or set(group.adjacency) - {"0", "1"}:
        raise StoreError(f"{group.place}: the adjacency {group.adjacency[:60]!r} is not a square 0/1 matrix")
    try:
        ops = [space.type_index(name.strip()) for name in group.operations.split(",")]
        if len(ops) != n:
            raise ArchError(f"{len(ops)} operations for a {n} x {n} adjacency")
        arch = Arch(np.asarray(ops), np.frombuffer(group.adjacency.encode(), np.uint8).reshape(n, n) - ord("0"))
    except ArchError as e:
        raise StoreError(f"{group.place}: {e}") from None
    return check_cell(space, arch, group.place)


def read_nb101_tfrecord(path: Path, space: SearchSpace, epochs: int = DEFAULT_EPOCHS) -> Dataset:
    """A Dataset of every cell trained for `epochs` epochs, labels averaged over its repeats.

    Args:
        path: the NAS-Bench-101 .tfrecord file.
        space: the NB101 space the cells are checked against.
        epochs: the training budget whose records are kept (4, 12, 36 or 108 in the full official file).

    Returns:
        One row per module hash, in file order, labelled with the mean validation and test accuracy,
        the parameter count and the mean training seconds over the cell's repeats.
    """
    path = Path(path)
    groups = _gather(path, epochs)
    archs = [_cell(space, g) for g in groups.values()]
    labels = {
        f"val_acc_{epochs}": [sum(g.val) / len(g.val) for g in groups.values()],
        f"test_acc_{epochs}": [sum(g.test) / len(g.test) for g in groups.values()],
        "params": [float(g.params) for g in groups.values()],
        "train_seconds": [sum(g.seconds) / len(g.seconds) for g in groups.values()],
    }
    ds = make_dataset(
        space, archs, {k: np.asarray(v, dtype=np.float64) for k, v in labels.items()}, str(path), hashes=list(groups)
    )
    _verify_hashes(ds, list(groups.values()))
    return ds


def _verify_hashes(ds: Dataset, groups: list[_Repeats]) -> None:
    """Refuse the file when a module hash is not svge's hash of its cell: the two would disagree on identity."""
    ours = hash_arrays(ds.ops, ds.adj, ds.n_nodes)
    wrong = np.nonzero(ours != ds.hashes)[0]
    if len(wrong):
        i = int(wrong[0])
        raise StoreError(
            f"{groups[i].place}: module hash {ds.hashes[i]} differs from the cell's NAS-Bench-101 "
            f"hash {ours[i]} ({len(wrong)} of {len(ds)} cells differ)"
        )
