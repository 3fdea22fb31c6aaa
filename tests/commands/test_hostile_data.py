"""Hostile input to `svge data ...` (import, sample, user spaces): issue 20's cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import Runner, alias, assert_one_line_error, dead_pid

from svge_cli.spaces import get_space
from svge_cli.storage import store

LINKS = ["same path", "symlink", "hard link"]
HEADER = "arch,cifar10_test"


def nb201_csv(path: Path, values: list[str]) -> Path:
    sp = get_space("nb201")
    rows = [f"{sp.format_native(a)},{v}" for a, v in zip(sp.sample(len(values), 0), values)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


@pytest.mark.parametrize("how", LINKS)
def test_import_refuses_to_write_over_its_input(svge: Runner, workdir: Path, tmp_path: Path, how: str) -> None:
    csv = nb201_csv(tmp_path / "c.csv", ["90.5", "91"])
    before = csv.read_bytes()
    r = svge("data", "import", "nb201", str(csv), "-o", str(alias(csv, how)))
    assert_one_line_error(r, "same file as the input", "FILE")
    assert csv.read_bytes() == before


@pytest.mark.parametrize("value", ["inf", "1e400", "NaN", "-inf"])
def test_labels_that_are_no_finite_number_are_unknown_and_said(
    svge: Runner, workdir: Path, tmp_path: Path, value: str
) -> None:
    csv = nb201_csv(tmp_path / "c.csv", ["90.5", value, "91"])
    r = svge("data", "import", "nb201", str(csv), "-o", str(tmp_path / "d.h5"))
    assert r.code == 0, r.stderr
    assert "1 'cifar10_test' values are no finite number" in r.stderr and "line 3" in r.stderr
    labels = store.load_dataset(tmp_path / "d.h5").labels["cifar10_test"]
    assert np.isnan(labels[1]) and labels[0] == 90.5


def test_a_text_column_is_left_out_with_a_note(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    csv = nb201_csv(tmp_path / "c.csv", ["best"])
    r = svge("data", "import", "nb201", str(csv), "-o", str(tmp_path / "d.h5"))
    assert r.code == 0, r.stderr
    assert "column 'cifar10_test' holds text, not numbers (1 rows): left out" in r.stderr
    assert "cifar10_test" not in store.load_dataset(tmp_path / "d.h5").labels


def test_a_huge_integer_label_in_json_lines_is_unknown(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    sp = get_space("enas")
    cell = sp.sample(1, 0)[0]
    line = '{"space": "enas", "ops": %s, "adj": %s, "acc": %d}\n' % (
        str(sp.ops_names(cell)).replace("'", '"'),
        cell.adj.tolist(),
        10**400,
    )
    (tmp_path / "c.jsonl").write_text(line)
    r = svge("data", "import", "enas", str(tmp_path / "c.jsonl"), "-o", str(tmp_path / "d.h5"))
    assert r.code == 0, r.stderr
    assert "'acc' values are no finite number" in r.stderr


def test_a_sample_beyond_memory_is_refused_at_once(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.txt"
    r = svge("data", "sample", "enas", "-n", "1000000000000", "-o", str(out))
    assert_one_line_error(r, "sampling 1,000,000,000,000 enas cells needs about", "available")
    assert not out.exists()


@pytest.mark.parametrize("nodes", [65, 100_000])
def test_a_user_space_larger_than_the_bound_is_refused(svge: Runner, workdir: Path, tmp_path: Path, nodes: int) -> None:
    spec = tmp_path / "big.json"
    spec.write_text(json.dumps({"name": "big", "ops": ["a", "b"], "max_nodes": nodes}))
    assert_one_line_error(svge("data", "space", "add", str(spec)), '"max_nodes" must be an integer from 3 to 64')


@pytest.mark.parametrize("ops", [1, 3])
def test_a_user_space_at_the_bound_samples(svge: Runner, workdir: Path, tmp_path: Path, ops: int) -> None:
    """Sizes from 44 nodes once gave NaN probabilities (the weights overflowed a float)."""
    spec = tmp_path / "wide.json"
    spec.write_text(json.dumps({"name": "wide", "ops": [f"op{i}" for i in range(ops)], "max_nodes": 64}))
    r = svge("data", "sample", str(spec), "-n", "2")
    assert r.code == 0, r.stderr
    assert [len(json.loads(line)["ops"]) for line in r.lines] == [64, 64]


def test_a_user_space_with_more_ops_than_svge_stores_is_refused(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "many.json"
    spec.write_text(json.dumps({"name": "many", "ops": [f"op{i}" for i in range(200)], "max_nodes": 5}))
    assert_one_line_error(svge("data", "space", "add", str(spec)), "200 operations, more than the 125")


def test_a_killed_writers_temporary_in_the_spaces_folder_is_swept_not_listed(
    svge: Runner, workdir: Path, tmp_path: Path
) -> None:
    spaces = workdir / "spaces"
    spaces.mkdir(parents=True)
    stale = spaces / f".toy.json.{dead_pid()}-killed.tmp"  # its writer is gone: it can never be completed
    stale.write_text('{"name": "toy", "ops": ["a"')
    spec = tmp_path / "toy.json"
    spec.write_text(json.dumps({"name": "toy", "ops": ["a", "b"], "max_nodes": 5}))
    assert svge("data", "space", "add", str(spec)).code == 0
    assert sorted(p.name for p in spaces.iterdir()) == ["toy.json"]
    assert json.loads((spaces / "toy.json").read_text())["ops"] == ["a", "b"]
