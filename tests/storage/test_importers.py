"""Importers: D-VAE ENAS text, NB201 CSV and .pth, JSON lines, format detection and dispatch."""

from __future__ import annotations

import json
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from cells import NB101_RECORD

from svge_cli.artifacts import SPLIT_TEST, SPLIT_TRAIN
from svge_cli.errors import StoreError
from svge_cli.spaces.enas import EnasSpace
from svge_cli.spaces.nb201 import NB201Space
from svge_cli.storage.importers import detect_format, import_file

NB201_HEADER = "index,arch,cifar10_valid_val,cifar10_valid_test,cifar10_test,params_mb"


@pytest.fixture(scope="module")
def nb201() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def nb201_strings(nb201: NB201Space) -> list[str]:
    return [nb201.format_native(a) for _, a in zip(range(6), nb201.enumerate())]


# ---------------------------------------------------------------- D-VAE ENAS text


def _dvae_lines(n: int, seed: int) -> list[str]:
    space = EnasSpace()
    rng = np.random.default_rng(seed)
    return [f"{space.format_native(c)}, {s:.4f}" for c, s in zip(space.sample(n, seed), rng.uniform(0.7, 0.75, n))]


def _dvae_reference(lines: list[str], burn_in: int) -> list[tuple[str, float]]:
    """What D-VAE's loader yields, computed the way it does: parse, then shuffle the pairs."""
    pairs = [(row, float(y)) for row, y in (ln.rsplit(", ", 1) for ln in lines[burn_in:])]
    random.Random(0).shuffle(pairs)
    return pairs


def test_dvae_import_reproduces_dvae_order_and_split(tmp_path: Path) -> None:
    lines = ["garbage in the burn-in is never read"] * 1000 + _dvae_lines(130, seed=1)
    path = tmp_path / "final_structures6.txt"
    path.write_text("\n".join(lines) + "\n")
    ds = import_file("enas", path)
    space = EnasSpace()
    expected = _dvae_reference(lines, 1000)
    assert len(ds) == 130 and ds.space == "enas"
    assert [space.format_native(a) for a in ds.archs()] == [row for row, _ in expected]
    assert np.allclose(ds.labels["ws_acc"], [y for _, y in expected])
    assert (ds.split[:117] == SPLIT_TRAIN).all() and (ds.split[117:] == SPLIT_TEST).all()
    assert ds.hashes.tolist() == [space.hash(a) for a in ds.archs()]


def test_dvae_full_size_split_is_17118_1902(tmp_path: Path) -> None:
    path = tmp_path / "enas.txt"
    path.write_text("\n".join(_dvae_lines(20_020, seed=2)))
    ds = import_file("enas", path)
    assert (ds.split == SPLIT_TRAIN).sum() == 17_118 and (ds.split == SPLIT_TEST).sum() == 1_902


def test_dvae_burn_in_parameter(tmp_path: Path) -> None:
    lines = _dvae_lines(40, seed=3)
    path = tmp_path / "e.txt"
    path.write_text("\n".join(lines))
    ds = import_file("enas", path, burn_in=10)
    assert len(ds) == 30
    assert np.allclose(ds.labels["ws_acc"], [y for _, y in _dvae_reference(lines, 10)])
    assert len(import_file("enas", path, burn_in=0)) == 40


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("[[1], [4, 0]]", "a row and its score"),
        ("[[1], [4, 0]], 0.7, 3", "a row and its score"),
        ("[[1], [4, 0]], high", "a row and its score"),
        ("[[1], [4, 0, 0]], 0.7", "layer 1 must be a list"),
        ("[[9]], 0.7", "op 9"),
        (str([[0] + [0] * i for i in range(7)]) + ", 0.7", "more than the 8"),
    ],
)
def test_dvae_bad_line_names_the_line(tmp_path: Path, bad: str, fragment: str) -> None:
    lines = _dvae_lines(5, seed=4)
    lines[3] = bad
    path = tmp_path / "e.txt"
    path.write_text("\n".join(lines))
    with pytest.raises(StoreError, match=f"e.txt, line 4: .*{fragment}"):
        import_file("enas", path, burn_in=0)


def test_dvae_too_short_or_wrong_space(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("\n".join(_dvae_lines(20, seed=5)))
    with pytest.raises(StoreError, match="no rows after the burn-in of 1000 lines"):
        import_file("enas", path)
    with pytest.raises(StoreError, match="holds enas cells, but space nb201"):
        import_file("nb201", path)


def test_dvae_rows_with_more_layers_need_a_node_limit(tmp_path: Path) -> None:
    space = EnasSpace()
    path = tmp_path / "enas12.txt"
    path.write_text("\n".join(f"{space.format_native(c)}, 0.7" for c in space.sample(5, 0, layers=12)))
    ds = import_file("enas", path, burn_in=0, node_limit=14)
    assert ds.n_nodes.tolist() == [14] * 5 and ds.ops.shape == (5, 14)


# ---------------------------------------------------------------- NB201 CSV


def test_nb201_csv_reads_columns_by_name(tmp_path: Path, nb201: NB201Space, nb201_strings: list[str]) -> None:
    rows = [f"{i},{s},{80 + i},{79 + i},{90 + i},{0.1 * i}" for i, s in enumerate(nb201_strings[:5])]
    path = tmp_path / "nb201_cifar10.csv"
    path.write_text("\n".join([NB201_HEADER, *rows, ""]))
    ds = import_file("nb201", path)
    assert len(ds) == 5 and ds.split is None
    assert ds.hashes.tolist() == nb201_strings[:5]
    assert set(ds.labels) == {
        "index",
        "cifar10_valid_val",
        "cifar10_valid_test",
        "cifar10_test",
        "params_mb",
        "equiv_class",
    }
    assert ds.labels["cifar10_test"].tolist() == [90, 91, 92, 93, 94]
    assert ds.labels["index"].tolist() == [0, 1, 2, 3, 4]
    assert ds.labels["equiv_class"].tolist() == [nb201.equivalence_class(a) for a in ds.archs()]

    shuffled = tmp_path / "other.csv"
    shuffled.write_text('cifar10_test,note,arch\n93.5,best,"' + nb201_strings[0] + '"\n,,' + nb201_strings[1] + "\n")
    ds2 = import_file("nb201", shuffled)
    assert np.isnan(ds2.labels["cifar10_test"][1]) and ds2.labels["cifar10_test"][0] == 93.5
    assert "note" not in ds2.labels  # a text column is not a label


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("index,cifar10_test\n0,90\n", "'arch' column"),
        ("", "'arch' column"),
        ("index,arch\n", "no architectures"),
        ("index,arch\n0,{s},5\n", "line 2: 3 fields"),
        ("index,arch\n0,{s}\nx,{s}\n", "line 3: 'index' is not a number"),
        ("index,arch\n0,{s}\n1,|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|\n", "line 3: unknown op"),
        ("index,arch\n0,[[1]]\n", "line 2: an nb201 string"),
    ],
)
def test_nb201_csv_errors(tmp_path: Path, nb201_strings: list[str], body: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body.replace("{s}", nb201_strings[0]))
    with pytest.raises(StoreError, match=fragment.replace("|", r"\|").replace("[", r"\[")):
        import_file("nb201", path)


# ---------------------------------------------------------------- NB201 .pth


def _trial(dataset: str, seed: int, final: dict[str, float], params: float) -> dict:
    """One ResultsCount state dict as nas_201_api saves it (200 epochs, final and first epoch)."""
    accs = {f"{name}@199": acc for name, acc in final.items()} | {f"{name}@0": 10.0 for name in final}
    return {
        "name": dataset,
        "seed": seed,
        "epochs": 200,
        "params": params,
        "flop": 10.0,
        "latency": [0.01],
        "net_state_dict": {"w": torch.zeros(2)},
        "arch_config": {"C": 16},
        "train_acc1es": {199: 99.0},
        "train_losses": {199: 0.1},
        "train_times": None,
        "train_acc5es": None,
        "eval_names": list(final),
        "eval_acc1es": accs,
        "eval_losses": {k: 1.0 for k in accs},
        "eval_times": {k: 1.0 for k in accs},
    }


def _arch_results(index: int, arch: str, trials: list[dict]) -> dict:
    seeds: dict[str, list[int]] = {}
    for t in trials:
        seeds.setdefault(t["name"], []).append(t["seed"])
    return {
        "arch_index": index,
        "arch_str": arch,
        "all_results": {(t["name"], t["seed"]): t for t in trials},
        "dataset_seed": seeds,
        "clear_net_done": False,
    }


def _nb201_pth(strings: list[str]) -> dict:
    full0 = [
        _trial("cifar10-valid", 777, {"x-valid": 80.0, "ori-test": 79.0}, 0.5),
        _trial("cifar10-valid", 888, {"x-valid": 82.0, "ori-test": 81.0}, 0.5),
        _trial("cifar10", 777, {"ori-test": 90.0}, 0.5),
        _trial("cifar100", 777, {"x-valid": 60.0, "x-test": 61.0, "ori-test": 60.5}, 0.6),
    ]
    full1 = [_trial("cifar10-valid", 777, {"x-valid": 70.0}, 0.2), _trial("cifar10", 999, {"ori-test": 85.0}, 0.2)]
    less = [_trial("cifar10-valid", 111, {"x-valid": 1.0, "ori-test": 1.0}, 0.5)]
    return {
        "meta_archs": strings[:3],
        "arch2infos": {
            0: {"less": _arch_results(0, strings[0], less), "full": _arch_results(0, strings[0], full0)},
            1: {"less": _arch_results(1, strings[1], less), "full": _arch_results(1, strings[1], full1)},
        },
        "evaluated_indexes": [0, 1],
    }


@pytest.mark.parametrize("zip_format", [True, False])
def test_nb201_pth_official_layout(tmp_path: Path, nb201_strings: list[str], zip_format: bool) -> None:
    path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    torch.save(_nb201_pth(nb201_strings), path, _use_new_zipfile_serialization=zip_format)
    assert detect_format(path) == "nb201-pth"
    ds = import_file("nb201", path)
    assert ds.hashes.tolist() == nb201_strings[:3]
    lab = ds.labels
    assert lab["index"].tolist() == [0, 1, 2]
    assert lab["cifar10_valid_val"][:2].tolist() == [81.0, 70.0]  # seed mean at the last epoch, 200-epoch runs
    assert lab["cifar10_valid_test"][0] == 80.0 and np.isnan(lab["cifar10_valid_test"][1])
    assert lab["cifar10_test"][:2].tolist() == [90.0, 85.0]
    assert lab["params_mb"][:2].tolist() == [0.5, 0.2]
    assert all(np.isnan(lab[k][2]) for k in ("cifar10_valid_val", "cifar10_test", "params_mb"))  # not evaluated
    assert "equiv_class" in lab


def test_nb201_pth_layout_surprises(tmp_path: Path, nb201_strings: list[str]) -> None:
    def attempt(obj: object, fragment: str) -> None:
        path = tmp_path / "x.pth"
        torch.save(obj, path)
        with pytest.raises(StoreError, match=fragment):
            import_file("nb201", path)

    attempt({"foo": 1}, "no 'meta_archs' entry")
    attempt([1, 2], "no 'meta_archs' entry")
    attempt({"meta_archs": nb201_strings[:1], "arch2infos": []}, "'arch2infos' is a list")
    attempt({"meta_archs": nb201_strings[:1], "arch2infos": {0: {"less": {}}}}, "no 200-epoch")
    attempt({"meta_archs": nb201_strings[:1], "arch2infos": {5: {}}}, "key 5")
    attempt({"meta_archs": ["|bad|"], "arch2infos": {}}, r"meta_archs\[0\]")
    broken = _nb201_pth(nb201_strings)
    del broken["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]
    attempt(broken, r"no \('cifar10', 777\) entry")


def test_nb201_pth_damaged_or_foreign_files(tmp_path: Path, nb201_strings: list[str]) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(StoreError, match="not a PyTorch .pth file"):
        import_file("nb201", text)
    good = tmp_path / "good.pth"
    torch.save(_nb201_pth(nb201_strings), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(StoreError, match="cannot be read as a NAS-Bench-201 file"):
        import_file("nb201", truncated)
    with pytest.raises(StoreError, match="holds nb201 cells, but space enas"):
        import_file("enas", good)


# ---------------------------------------------------------------- JSON lines


def test_jsonl_labels_and_missing_values(tmp_path: Path, nb201: NB201Space, nb201_strings: list[str]) -> None:
    lines = []
    for i, s in enumerate(nb201_strings[:4]):
        arch = nb201.parse_native(s)
        rec = {"space": "nb201", "ops": nb201.ops_names(arch), "adj": arch.adj.tolist(), "hash": s, "name": f"c{i}"}
        rec |= [{"acc": 90.5, "rank": 1}, {"acc": None}, {}, {"acc": float("nan"), "rank": 4}][i]
        lines.append(json.dumps(rec))
    path = tmp_path / "cells.jsonl"
    path.write_text("\n".join(["# exported cells", *lines, ""]))
    ds = import_file("nb201", path)
    assert len(ds) == 4 and ds.hashes.tolist() == nb201_strings[:4]
    assert set(ds.labels) == {"acc", "rank", "equiv_class"}  # text "name" and "hash" are not labels
    assert ds.labels["acc"][0] == 90.5 and np.isnan(ds.labels["acc"][1:]).all()
    assert ds.labels["rank"][0] == 1 and np.isnan(ds.labels["rank"][1:3]).all() and ds.labels["rank"][3] == 4


def test_jsonl_nb101_official_hash(tmp_path: Path) -> None:
    path = tmp_path / "nb101.jsonl"
    path.write_text(json.dumps(NB101_RECORD) + "\n")
    ds = import_file("nb101", path)
    assert ds.hashes.tolist() == [NB101_RECORD["hash"]]
    assert ds.labels["params"].tolist() == [8555530.0]
    bad = dict(NB101_RECORD, hash="0" * 32)
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(StoreError, match="line 1: the file's hash 0{32} is not the cell's nb101 hash"):
        import_file("nb101", path)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("{not json", "not valid JSON"),
        ('{"space": "enas", "ops": [], "adj": []}', "holds a enas cell"),
        ('{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 1], [0, 0]]}', "8 nodes"),
        ('{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 0], [1, 0]]}', "upper triangular"),
    ],
)
def test_jsonl_bad_line_names_the_line(
    tmp_path: Path, nb201: NB201Space, nb201_strings: list[str], bad: str, fragment: str
) -> None:
    arch = nb201.parse_native(nb201_strings[0])
    good = json.dumps({"space": "nb201", "ops": nb201.ops_names(arch), "adj": arch.adj.tolist()})
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([good, good, bad]))
    with pytest.raises(StoreError, match=f"c.jsonl, line 3: .*{fragment}"):
        import_file("nb201", path)


def test_jsonl_mixed_label_types_and_empty_file(tmp_path: Path, nb201: NB201Space, nb201_strings: list[str]) -> None:
    arch = nb201.parse_native(nb201_strings[0])
    cell = {"space": "nb201", "ops": nb201.ops_names(arch), "adj": arch.adj.tolist()}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(cell | {"acc": 1.0}) + "\n" + json.dumps(cell | {"acc": "high"}) + "\n")
    with pytest.raises(StoreError, match="line 2: 'acc' is not a number"):
        import_file("nb201", path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(StoreError, match="no architectures"):
        import_file("nb201", empty)


# ---------------------------------------------------------------- detection and dispatch


def test_detect_format_by_content_then_extension(tmp_path: Path, nb201_strings: list[str]) -> None:
    cases = {
        "a.dat": ('{"ops": []}\n', "jsonl"),
        "b.dat": ("[[1]], 0.7\n", "dvae-enas"),
        "c.dat": (NB201_HEADER + "\n", "csv"),
        "d.txt": ("{}\n", "jsonl"),
        "e.csv": ("", "csv"),
        "f.jsonl": ("", "jsonl"),
        "g.txt": ("", "dvae-enas"),
    }
    for name, (body, fmt) in cases.items():
        (tmp_path / name).write_text(body)
        assert detect_format(tmp_path / name) == fmt, name
    (tmp_path / "h.dat").write_text("hello\n")
    with pytest.raises(StoreError, match="unknown format"):
        import_file("nb201", tmp_path / "h.dat")


def test_missing_file_and_unknown_space(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        import_file("nb201", tmp_path / "absent.csv")
    (tmp_path / "x.csv").write_text(NB201_HEADER + "\n")
    with pytest.raises(StoreError, match="unknown search space 'nb999'"):
        import_file("nb999", tmp_path / "x.csv")
    with pytest.raises(StoreError, match="not UTF-8"):
        (tmp_path / "y.csv").write_bytes(b"arch,acc\n\xff\xfe\n")
        import_file("nb201", tmp_path / "y.csv")


def test_tfrecord_dispatches_to_the_nb101_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("svge_cli.storage.importers.nb101_tfrecord")
    fake.read_nb101_tfrecord = lambda path, space: calls.append((path, space.name)) or "dataset"
    monkeypatch.setitem(sys.modules, "svge_cli.storage.importers.nb101_tfrecord", fake)
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"\x80\x00\x00\x00")  # binary bytes must not be mistaken for a .pth
    assert import_file("nb101", path) == "dataset"
    assert calls == [(path, "nb101")]
    with pytest.raises(StoreError, match="holds nb101 cells, but space enas"):
        import_file("enas", path)
