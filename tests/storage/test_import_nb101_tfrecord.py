"""NB101 .tfrecord import: real TFRecord framing and hand-encoded ModelMetrics protobufs."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from svge_cli.errors import StoreError
from svge_cli.spaces.nb101 import NB101Space
from svge_cli.storage.importers import import_file
from svge_cli.storage.importers.nb101_tfrecord import crc32c, masked_crc32c, parse_model_metrics, read_nb101_tfrecord

SPACE = NB101Space()
# two NAS-Bench-101 cells with their official module hashes (test vectors)
SMALL = ("001a6fcc8b38cbc515be788a86bdc804", "0110001000010000", "input,maxpool3x3,maxpool3x3,output")
MEDIUM = (
    "001ea832563f8d635ef7d0af25926274",
    "0111100111000100000100000",
    "input,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,output",
)


# ---------------------------------------------------------------- writing fixtures (independent encoders)


def slow_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def double_field(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def bytes_field(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def evaluation(epoch: float, seconds: float, train: float, val: float, test: float) -> bytes:
    return (
        double_field(1, epoch)
        + double_field(2, seconds)
        + double_field(3, train)
        + double_field(4, val)
        + double_field(5, test)
        + bytes_field(6, b"/tmp/model.ckpt-1234")
    )


def metrics(params: int, final: tuple[float, float, float], epochs: float = 108.0) -> bytes:
    """ModelMetrics: three evaluations (start, halfway, final), params, total time."""
    seconds, val, test = final
    return (
        bytes_field(1, evaluation(0.0, 0.0, 0.1, 0.1, 0.1))
        + bytes_field(1, evaluation(epochs / 2, seconds / 2, 0.5, 0.5, 0.5))
        + bytes_field(1, evaluation(epochs, seconds, 1.0, val, test))
        + varint(2 << 3 | 0)
        + varint(params)
        + double_field(3, seconds * 1.2)
    )


def record(cell: tuple[str, str, str], epochs: int, payload: bytes) -> bytes:
    module_hash, adjacency, ops = cell
    return json.dumps([module_hash, epochs, adjacency, ops, base64.b64encode(payload).decode()]).encode()


def write_tfrecord(path: Path, records: list[bytes]) -> Path:
    with path.open("wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", mask(slow_crc32c(length))))
            f.write(data + struct.pack("<I", mask(slow_crc32c(data))))
    return path


@pytest.fixture
def tfrecord(tmp_path: Path) -> Path:
    records = []
    for k in range(3):  # three repeats per cell, interleaved as in the real file
        records.append(record(SMALL, 108, metrics(1000, (100.0 + k, 0.80 + 0.01 * k, 0.70 + 0.01 * k))))
        records.append(record(MEDIUM, 108, metrics(2000, (200.0 + k, 0.90 + 0.01 * k, 0.85 + 0.01 * k))))
    records.append(record(SMALL, 36, metrics(1000, (40.0, 0.5, 0.4), epochs=36.0)))
    return write_tfrecord(tmp_path / "nb101.tfrecord", records)


# ---------------------------------------------------------------- reading


def test_crc32c_check_value_and_mask() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc32c(b"abc") == mask(slow_crc32c(b"abc"))


def test_reads_cells_hashes_and_means(tfrecord: Path) -> None:
    ds = read_nb101_tfrecord(tfrecord, SPACE)
    assert ds.space == "nb101" and len(ds) == 2
    assert list(ds.hashes) == [SMALL[0], MEDIUM[0]]
    assert ds.arch(0) == SPACE.parse_native("ops=maxpool,maxpool;adj=0110/0010/0001/0000")
    assert ds.arch(1) == SPACE.parse_native("ops=maxpool,conv3x3,conv3x3;adj=01111/00111/00010/00001/00000")
    np.testing.assert_allclose(ds.labels["val_acc_108"], [0.81, 0.91])
    np.testing.assert_allclose(ds.labels["test_acc_108"], [0.71, 0.86])
    np.testing.assert_allclose(ds.labels["train_seconds"], [101.0, 201.0])
    np.testing.assert_array_equal(ds.labels["params"], [1000.0, 2000.0])


def test_other_epoch_budget(tfrecord: Path) -> None:
    ds = read_nb101_tfrecord(tfrecord, SPACE, epochs=36)
    assert list(ds.hashes) == [SMALL[0]]
    np.testing.assert_allclose(ds.labels["val_acc_36"], [0.5])
    with pytest.raises(StoreError, match=r"no records trained for 4 epochs \(epoch budgets found: 36, 108\)"):
        read_nb101_tfrecord(tfrecord, SPACE, epochs=4)


def test_import_file_dispatches_on_the_extension(tfrecord: Path) -> None:
    assert len(import_file("nb101", tfrecord)) == 2


def test_protobuf_decoder_skips_unknown_fields_and_reads_negative_int32() -> None:
    payload = (
        varint(9 << 3 | 0)
        + varint(7)
        + bytes_field(1, evaluation(108.0, 5.0, 1.0, 0.25, 0.5))
        + varint(2 << 3 | 0)
        + varint(-3)
        + bytes_field(10, b"future field")
        + varint(11 << 3 | 5)
        + b"\0" * 4
    )
    params, final = parse_model_metrics(payload)
    assert params == -3 and final == {2: 5.0, 4: 0.25, 5: 0.5}


# ---------------------------------------------------------------- refusing bad files


def test_truncated_file(tfrecord: Path) -> None:
    data = tfrecord.read_bytes()
    tfrecord.write_bytes(data[:-10])
    with pytest.raises(StoreError, match="truncated TFRecord: the record at byte .* is cut short"):
        read_nb101_tfrecord(tfrecord, SPACE)
    tfrecord.write_bytes(data + data[:5])
    with pytest.raises(StoreError, match="truncated TFRecord: the record header"):
        read_nb101_tfrecord(tfrecord, SPACE)


def test_not_a_tfrecord(tmp_path: Path) -> None:
    path = tmp_path / "notes.tfrecord"
    path.write_text("this is plain text, not a TFRecord file at all\n")
    with pytest.raises(StoreError, match=r"not a TFRecord file \(bad record header at byte 0\)"):
        read_nb101_tfrecord(path, SPACE)
    with pytest.raises(StoreError, match="no such file"):
        read_nb101_tfrecord(tmp_path / "missing.tfrecord", SPACE)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="no records trained for 108 epochs"):
        read_nb101_tfrecord(path, SPACE)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff\xfe not json", "the data is not JSON"),
        (b'["abc", 108, "0100", "input,output"]', r"expected \[module_hash, epochs, adjacency, operations, metrics\]"),
        (json.dumps(["h", 108, "0100", "input,output", "***"]).encode(), "not valid base64"),
        (record(SMALL, 108, metrics(1000, (1.0, 0.5, 0.5)))[:-20] + b'"]', "not valid base64|malformed ModelMetrics"),
        (record(SMALL, 108, b"\x0a\x05\x11\x00"), r"malformed ModelMetrics protobuf \(field 1 is cut short\)"),
        (record(SMALL, 108, varint(2 << 3 | 0) + varint(5)), "evaluation_data is missing"),
        (
            record(SMALL, 108, bytes_field(1, double_field(4, 0.5)) + varint(2 << 3) + varint(5)),
            "final evaluation lacks training_time, test_accuracy",
        ),
        (
            record(
                ("0" * 32, "0110001000010000", "input,maxpool3x3,maxpool3x3,output"), 108, metrics(1, (1.0, 0.5, 0.5))
            ),
            "differs from the cell's NAS-Bench-101 hash 001a6fcc",
        ),
        (record((SMALL[0], "011000100001000", SMALL[2]), 108, metrics(1, (1.0, 0.5, 0.5))), "not a square 0/1 matrix"),
        (
            record((SMALL[0], SMALL[1], "input,conv9x9,maxpool3x3,output"), 108, metrics(1, (1.0, 0.5, 0.5))),
            "unknown op 'conv9x9'",
        ),
        (
            record((SMALL[0], "0100000000000000", SMALL[2]), 108, metrics(1, (1.0, 0.5, 0.5))),
            "does not reach the output",
        ),
    ],
)
def test_malformed_records(tmp_path: Path, data: bytes, message: str) -> None:
    path = write_tfrecord(tmp_path / "bad.tfrecord", [data])
    with pytest.raises(StoreError, match=message) as info:
        read_nb101_tfrecord(path, SPACE)
    assert "\n" not in str(info.value)


def test_one_hash_for_two_cells_is_refused(tmp_path: Path) -> None:
    other = (SMALL[0], MEDIUM[1], MEDIUM[2])
    path = write_tfrecord(
        tmp_path / "clash.tfrecord",
        [record(SMALL, 108, metrics(1, (1.0, 0.5, 0.5))), record(other, 108, metrics(1, (1.0, 0.5, 0.5)))],
    )
    with pytest.raises(StoreError, match="names a different cell than"):
        read_nb101_tfrecord(path, SPACE)
