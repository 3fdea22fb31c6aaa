"""Bad input, as a user would give it: every case ends in one line, a non-zero exit and no stray files.

The contract (issue 2, "Bad input"): one line on stderr starting ``svge: error:``
that names the problem, exit code 1 (2 for a usage mistake such as a directory
given for a file), no traceback, and no partial output file: a new output path
does not appear, an old output file keeps its bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import Result, Runner, Trained, assert_one_line_error, shell

from svge_cli import artifacts
from svge_cli.storage import store

OLD = b"the previous output, which a failed command must not touch\n"

ENAS_OPS = ["input", "conv3x3", "conv5x5", "sepconv3x3", "sepconv5x5", "avgpool3x3", "maxpool3x3", "output"]
ENAS_CHAIN = [[int(j == i + 1) for j in range(8)] for i in range(8)]
NB101_OP = "conv3x3-bn-relu"


def jsonl(space: str, ops: list[str], adj: list[list[int]]) -> str:
    return json.dumps({"space": space, "ops": ops, "adj": adj}) + "\n"


def nb101_ten_edges() -> list[list[int]]:
    """Seven vertices, every one on an input -> output path, ten edges (the limit is nine)."""
    edges = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 4), (2, 3), (2, 5), (3, 6), (4, 6), (5, 6)]
    return [[int((i, j) in edges) for j in range(7)] for i in range(7)]


#: (name, text a user might feed `svge encode`, words the error line must contain)
BAD_CELLS = [
    ("malformed JSON", '{"space": "enas", "ops": [\n', ["line 1", "not valid JSON"]),
    ("malformed second row", jsonl("enas", ENAS_OPS, ENAS_CHAIN) + '{"space": "enas"}\n', ["line 2", '"ops"']),
    ("malformed native row", "[[1], [4, 0], [9, 9, 9]]\n", ["line 1", "not a JSON line or a native string"]),
    ("unknown op", jsonl("enas", [*ENAS_OPS[:3], "conv7x7", *ENAS_OPS[4:]], ENAS_CHAIN), ["unknown op 'conv7x7'"]),
    ("unknown NB201 op", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|conv_9x9~2|\n", ["line 1", "pass --space"]),
    (
        "cycle",
        jsonl(
            "nb101", ["input", NB101_OP, NB101_OP, "output"], [[0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]]
        ),
        ["line 1", "cycle"],
    ),
    (
        "lower-triangular adjacency",
        jsonl("nb101", ["input", NB101_OP, "output"], [[0, 0, 1], [1, 0, 0], [0, 0, 0]]),
        ["line 1", "not in topological order"],
    ),
    ("lower-triangular NB101 string", "ops=conv3x3;adj=010/101/000\n", ["line 1", "pass --space"]),
    (
        "ten NB101 edges",
        jsonl("nb101", ["input", *[NB101_OP] * 5, "output"], nb101_ten_edges()),
        ["10 edges", "more than 9"],
    ),
    (
        "ten NB101 edges, native",
        "ops=conv3x3,conv3x3,conv3x3,conv1x1,maxpool;adj="
        + "/".join("".join(map(str, row)) for row in nb101_ten_edges())
        + "\n",
        ["10 edges", "more than 9"],
    ),
    (
        "NB201 with 3 nodes",
        jsonl("nb201", ["input", "nor_conv_3x3", "output"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]),
        ["8 nodes, not 3"],
    ),
    (
        "NB101 with 8 nodes",
        jsonl("nb101", ["input", *[NB101_OP] * 6, "output"], [[int(j == i + 1) for j in range(8)] for i in range(8)]),
        ["8 nodes", "more than 7"],
    ),
    (
        "ENAS with 9 nodes",
        jsonl("enas", [*ENAS_OPS[:-1], "conv3x3", "output"], [[int(j == i + 1) for j in range(9)] for i in range(9)]),
        ["9 nodes"],
    ),
    ("adjacency of the wrong size", jsonl("enas", ENAS_OPS, ENAS_CHAIN[:7]), ["8 x 8"]),
    ("empty file", "", ["no architectures"]),
    ("only comments", "# cells follow\n\n", ["no architectures"]),
    ("binary garbage", b"\x89HDF\r\n\x1a\n\x00\xff\xfe" * 50, ["not UTF-8 text"]),
]


def assert_untouched(old: Path) -> None:
    assert old.read_bytes() == OLD
    assert [p.name for p in old.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture
def old_output(enas_ws: Path, tmp_path: Path) -> Path:
    path = tmp_path / "out.h5"
    path.write_bytes(OLD)
    return path


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD_CELLS], ids=[c[0] for c in BAD_CELLS])
def test_bad_cells_in_a_file(
    svge: Runner, old_output: Path, tmp_path: Path, text: str | bytes, words: list[str]
) -> None:
    (tmp_path / "cells.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    result = svge("encode", "cells.txt", "-o", "out.h5")
    assert_one_line_error(result, "cells.txt", *words)
    assert_untouched(old_output)
    assert_one_line_error(svge("encode", "cells.txt", "-o", "new.h5"))
    assert not (tmp_path / "new.h5").exists()


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD_CELLS], ids=[c[0] for c in BAD_CELLS])
def test_bad_cells_on_stdin(svge: Runner, old_output: Path, text: str | bytes, words: list[str]) -> None:
    assert_one_line_error(svge("encode", "-", "-o", "out.h5", stdin=text), "stdin", *words)
    assert_untouched(old_output)


@pytest.mark.parametrize(
    ("space", "text", "words"),
    [
        ("nb201", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|conv_9x9~2|\n", ["unknown op 'conv_9x9'"]),
        ("nb101", "ops=conv3x3;adj=010/101/000\n", ["row 1", "upper triangular"]),
        ("enas", "[[1], [4, 0], [9, 9, 9]]\n", ["layer"]),
    ],
)
def test_with_space_given_a_native_string_gets_the_exact_reason(
    svge: Runner, old_output: Path, space: str, text: str, words: list[str]
) -> None:
    assert_one_line_error(svge("encode", "-", "--space", space, "-o", "out.h5", stdin=text), "line 1", *words)
    assert_untouched(old_output)


# ---------------------------------------------------------------- HDF5 inputs


@pytest.fixture
def latents(svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path) -> Path:
    assert svge("encode", str(trained.archs_jsonl), "-o", "lat.h5").code == 0
    return tmp_path / "lat.h5"


def test_truncated_latents(svge: Runner, latents: Path, tmp_path: Path) -> None:
    (tmp_path / "cut.h5").write_bytes(latents.read_bytes()[:1500])
    (tmp_path / "out.txt").write_bytes(OLD)
    assert_one_line_error(svge("decode", "cut.h5", "-o", "out.txt"), "cut.h5", "truncated")
    assert_untouched(tmp_path / "out.txt")
    assert_one_line_error(svge("decode", "-", stdin=latents.read_bytes()[:1500]), "stdin", "truncated")


def test_truncated_checkpoint_and_dataset(svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path) -> None:
    (tmp_path / "ck.h5").write_bytes(trained.checkpoint.read_bytes()[:4000])
    (tmp_path / "ds.h5").write_bytes(trained.dataset.read_bytes()[:2000])
    assert_one_line_error(
        svge("encode", str(trained.archs_jsonl), "--checkpoint", "ck.h5", "-o", "lat.h5"), "ck.h5", "truncated"
    )
    assert not (tmp_path / "lat.h5").exists()
    assert_one_line_error(svge("data", "info", "ds.h5"), "ds.h5", "truncated")
    assert_one_line_error(svge("train-vae", "--space", "enas", "--dataset", "ds.h5"), "ds.h5", "truncated")


def test_empty_and_foreign_files(svge: Runner, latents: Path, trained: Trained, tmp_path: Path) -> None:
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "text.h5").write_text("just text\n")
    assert_one_line_error(svge("data", "info", "empty.h5"), "empty.h5", "not a readable HDF5 file")
    assert_one_line_error(svge("decode", "text.h5"), "text.h5", "no HDF5 signature")
    assert_one_line_error(svge("decode", "-"), "stdin is empty")
    assert_one_line_error(svge("decode", str(trained.checkpoint)), "checkpoint file", "expected an svge latents file")
    assert_one_line_error(svge("data", "info", "lat.h5"), "latents file", "expected an svge dataset file")
    assert_one_line_error(
        svge("train-vae", "--space", "nb201", "--dataset", str(trained.dataset)), "enas dataset", "nb201"
    )


@pytest.mark.parametrize("args", [("decode", "-"), ("data", "info", "-")], ids=" ".join)
def test_binary_garbage_on_stdin(svge: Runner, enas_ws: Path, args: tuple[str, ...]) -> None:
    garbage = bytes(range(256)) * 20
    assert_one_line_error(svge(*args, stdin=garbage), "stdin", "not a readable HDF5 file")


def test_binary_garbage_through_a_real_pipe(enas_ws: Path, tmp_path: Path) -> None:
    done = shell("svge decode - -o out.txt", tmp_path, {"SVGE_WORKDIR": str(enas_ws)}, stdin=os.urandom(4096))
    result = Result(done.returncode, done.stdout, done.stderr.decode())
    assert_one_line_error(result, "stdin", "not a readable HDF5 file")
    assert result.stdout == b"" and not (tmp_path / "out.txt").exists()


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "args",
    [
        ("encode", "{missing}", "-o", "new.h5"),
        ("decode", "{missing}", "-o", "new.txt"),
        ("data", "info", "{missing}"),
        ("data", "import", "enas", "{missing}", "-o", "new.h5"),
        ("encode", "{cells}", "--checkpoint", "{missing}", "-o", "new.h5"),
        ("evaluate", "--space", "enas", "--checkpoint", "{missing}"),
        ("train-vae", "--space", "enas", "--dataset", "{missing}"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_missing_file(svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, args: tuple[str, ...]) -> None:
    result = svge(*[a.format(missing="nothere.h5", cells=trained.archs_jsonl) for a in args])
    assert_one_line_error(result, "nothere.h5", "no such file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


@pytest.mark.parametrize(
    "args",
    [
        ("encode", "{folder}", "-o", "new.h5"),
        ("decode", "{folder}", "-o", "new.txt"),
        ("data", "info", "{folder}"),
        ("data", "import", "enas", "{folder}"),
        ("encode", "{cells}", "--checkpoint", "{folder}", "-o", "new.h5"),
        ("train-vae", "--space", "enas", "--dataset", "{folder}"),
        ("data", "sample", "enas", "-o", "{folder}"),
    ],
    ids=lambda a: " ".join(a[:2]) + (" -o" if a[-2] == "-o" and a[-1] == "{folder}" else ""),
)
def test_a_directory_where_a_file_is_expected(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "folder").mkdir()
    result = svge(*[a.format(folder="folder", cells=trained.archs_jsonl) for a in args])
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("svge: error: ") and "'folder' is a directory" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "ws"]


def test_an_output_path_below_a_file(svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(OLD)
    assert_one_line_error(
        svge("data", "sample", "enas", "-n", "2", "-o", "plain/cells.txt"), "plain/cells.txt", "cannot write there"
    )
    assert_one_line_error(svge("encode", str(trained.archs_jsonl), "-o", "plain/lat.h5"), "cannot write there")
    assert (tmp_path / "plain").read_bytes() == OLD


# ---------------------------------------------------------------- terminals


@pytest.mark.parametrize(
    "args",
    [
        ("encode", "{cells}"),
        ("encode", "{cells}", "-o", "-"),
        ("data", "import", "nb201", "{csv}", "-o", "-"),
        ("data", "enumerate", "nb201", "-o", "-"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_binary_hdf5_is_never_written_to_a_terminal(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "n.csv").write_text("index,arch\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    result = svge(*[a.format(cells=trained.archs_jsonl, csv="n.csv") for a in args], tty=("stdout",))
    assert_one_line_error(result, "refusing to write binary HDF5 to a terminal", "-o FILE")
    assert result.stdout == b""


@pytest.mark.parametrize("args", [("encode", "-", "-o", "x.h5"), ("decode", "-"), ("data", "info", "-")], ids=" ".join)
def test_reading_stdin_from_a_terminal_is_refused(svge: Runner, enas_ws: Path, args: tuple[str, ...]) -> None:
    assert_one_line_error(svge(*args, tty=("stdin",)), "stdin is a terminal")


def test_enumerate_to_stdout_keeps_the_summary_off_it(svge: Runner, workdir: Path) -> None:
    result = svge("data", "enumerate", "nb201", "-o", "-")
    assert result.code == 0 and "15,625 unique cells" in result.stderr
    assert result.stdout.startswith(b"\x89HDF") and b"unique cells" not in result.stdout
    assert_one_line_error(svge("data", "enumerate", "nb201", "-o", "-", "--json"), "--json and -o -")


# ---------------------------------------------------------------- imports


def test_bad_rows_in_imports(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    sp_rows = "\n".join(f"[[{i % 6}], [{(i + 1) % 6}, 0]], 0.7" for i in range(1_010))
    cases = {
        "enas.txt": (sp_rows + "\n[[1], [9, 0]], 0.5\n", ["line 1011", "op 9"]),
        "short.txt": ("[[1], [2, 0]], 0.7\n" * 10, ["no rows after the burn-in"]),
        "empty.csv": ("", ["header", "'arch'"]),
        "ops.csv": ("index,arch\n0,|nor_conv_3x3~0|+|foo~0|none~1|+|none~0|none~1|none~2|\n", ["line 2", "'foo'"]),
        "fields.csv": (
            "index,arch,cifar10_test\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n",
            ["line 2", "fields"],
        ),
        "garbage.txt": (os.urandom(2000), ["not UTF-8"]),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        (tmp_path / "out.h5").write_bytes(OLD)
        space = "enas" if name.endswith(".txt") else "nb201"
        assert_one_line_error(svge("data", "import", space, name, "-o", "out.h5"), name, *words)
        assert_untouched(tmp_path / "out.h5")
        assert_one_line_error(svge("data", "import", space, name))
        assert not workdir.exists()


def test_a_failed_replacement_keeps_the_workspace_dataset(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text("index,arch\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    (tmp_path / "bad.csv").write_text("index,arch\n0,|none~0|+|none~0|\n")
    assert svge("data", "import", "nb201", "good.csv").code == 0
    before = (workdir / "nb201" / "dataset.h5").read_bytes()
    assert_one_line_error(svge("data", "import", "nb201", "bad.csv", "--force"), "bad.csv", "line 2")
    assert (workdir / "nb201" / "dataset.h5").read_bytes() == before


# ---------------------------------------------------------------- failures half-way through a write


def test_a_failure_while_writing_text_leaves_the_old_file(
    svge: Runner, latents: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svge_cli.arch import ArchError
    from svge_cli.commands import model as model_commands

    real = model_commands.format_arch
    written: list[str] = []

    def fails_on_the_third(*args, **kwargs) -> str:
        if len(written) == 2:
            raise ArchError("simulated failure on the third line")
        written.append(real(*args, **kwargs))
        return written[-1]

    (tmp_path / "out.txt").write_bytes(OLD)
    monkeypatch.setattr(model_commands, "format_arch", fails_on_the_third)
    assert_one_line_error(svge("decode", "lat.h5", "-o", "out.txt"), "simulated failure")
    assert_untouched(tmp_path / "out.txt")


def test_ctrl_c_while_writing_hdf5_leaves_the_old_file(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(values):
        raise KeyboardInterrupt

    (tmp_path / "out.h5").write_bytes(OLD)
    monkeypatch.setattr(store, "_str_array", interrupted)
    result = svge("encode", str(trained.archs_jsonl), "-o", "out.h5")
    assert result.code == 130 and result.stderr.strip() == "svge: interrupted"
    assert_untouched(tmp_path / "out.h5")


def test_latents_of_another_dimension(svge: Runner, enas_ws: Path, tmp_path: Path) -> None:
    z = np.zeros((3, 10), dtype=np.float32)
    store.save_latents(tmp_path / "ten.h5", artifacts.Latents("enas", z, z, np.full(3, "")))
    (tmp_path / "out.txt").write_bytes(OLD)
    assert_one_line_error(svge("decode", "ten.h5", "-o", "out.txt"), "ten.h5", "dimension 10", "dimension 8")
    assert_untouched(tmp_path / "out.txt")


NB201_HEADER = "index,arch,cifar10_valid_val,cifar10_valid_test,cifar10_test,params_mb\n"
NB201_ROW = "{i},|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|,{acc},90.0,91.0,0.5\n"


def test_repeated_cells_in_an_import_are_reported_or_refused(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    same = tmp_path / "same.csv"
    same.write_text(NB201_HEADER + NB201_ROW.format(i=0, acc=85.0) * 3)
    result = svge("data", "import", "nb201", str(same))
    assert result.code == 0 and "2 repeated rows" in result.stderr
    assert "imported 1 nb201 cells" in result.stderr
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(NB201_HEADER + NB201_ROW.format(i=0, acc=85.0) + NB201_ROW.format(i=0, acc=70.0))
    assert_one_line_error(
        svge("data", "import", "nb201", str(conflict), "--force"), "line 3", "line 2", "cifar10_valid_val"
    )


def test_a_pth_file_with_code_in_it_is_not_unpickled(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    import torch

    torch.save({"meta_archs": [], "arch2infos": {}, "payload": _Planted()}, tmp_path / "bench.pth")
    result = svge("data", "import", "nb201", str(tmp_path / "bench.pth"))
    assert_one_line_error(result, "--trust-pickle")
    assert not _Planted.ran


class _Planted:
    """Unpickling this would run `_Planted.mark`: a stand-in for code hidden in a downloaded file."""

    ran = False

    def __reduce__(self) -> tuple:
        return (_Planted.mark, ())

    @staticmethod
    def mark() -> None:
        _Planted.ran = True


def test_temporaries_of_killed_writers_are_removed_on_the_next_write(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path
) -> None:
    dead = tmp_path / ".lat.h5.999999999-abc.tmp"  # no such process can exist
    alive = tmp_path / f".lat.h5.{os.getpid()}-abc.tmp"  # a writer still at work
    foreign = tmp_path / ".notes.tmp"  # not svge's naming
    for path in (dead, alive, foreign):
        path.write_bytes(b"partial")
    assert svge("encode", str(trained.archs_jsonl), "-o", "lat.h5").code == 0
    assert not dead.exists() and alive.exists() and foreign.exists()
