"""archtext: reading JSON lines and native strings, inferring spaces, writing lines back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from svge_cli.arch import ArchError
from svge_cli.spaces import get_space
from svge_cli.storage import archtext
from svge_cli.storage.archtext import format_arch, infer_native_space, read_archs

NB201 = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ENAS = "[[1], [4, 0], [5, 0, 0], [0, 1, 1, 1], [2, 1, 1, 1, 1], [3, 0, 0, 0, 0, 1]]"
NB101 = "ops=conv3x3,maxpool,conv1x1;adj=01100/00010/00010/00001/00000"


def _json_line(space_name: str, native: str, **extra) -> str:
    space = get_space(space_name)
    arch = space.parse_native(native)
    return json.dumps({"space": space_name, "ops": space.ops_names(arch), "adj": arch.adj.tolist(), **extra})


def test_native_lines_infer_their_space() -> None:
    for name, text in (("nb201", NB201), ("enas", ENAS), ("nb101", NB101)):
        records = read_archs(["# a comment", "", text], None, "t.txt")
        assert len(records) == 1
        rec = records[0]
        assert rec.space.name == name and rec.line == 3 and rec.extra == {}
        assert rec.space.format_native(rec.arch) == text
        assert infer_native_space(text).name == name


def test_json_lines_keep_extras_and_space() -> None:
    lines = [_json_line("nb201", NB201, acc=91.5, note="x"), _json_line("nb201", NB201)]
    records = read_archs(lines, None, "a.jsonl")
    assert [r.space.name for r in records] == ["nb201", "nb201"]
    assert records[0].extra == {"acc": 91.5, "note": "x"} and records[1].extra == {}
    arch, extra, space, line = records[0]  # records unpack like tuples
    assert space.format_native(arch) == NB201 and line == 1


def test_json_line_without_space_uses_the_given_one() -> None:
    space = get_space("enas")
    arch = space.parse_native(ENAS)
    line = json.dumps({"ops": space.ops_names(arch), "adj": arch.adj.tolist()})
    assert read_archs([line], space, "s")[0].arch == arch
    with pytest.raises(ArchError, match="pass --space"):
        read_archs([line], None, "s")


def test_op_aliases_are_accepted() -> None:
    space = get_space("enas")
    arch = space.parse_native(ENAS)
    names = [{"sepconv3x3": "sep3"}.get(n, n) for n in space.ops_names(arch)]
    line = json.dumps({"space": "enas", "ops": names, "adj": arch.adj.tolist()})
    assert read_archs([line], None, "s")[0].arch == arch


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ('{"space": "nb201", "ops": ["input"]', "not valid JSON"),
        ("[1, 2]", "not a JSON line or a native string"),
        ('["x"]', "not a JSON line or a native string"),
        ('{"space": "nope", "ops": [], "adj": []}', "unknown search space"),
        ('{"space": "nb201", "adj": []}', 'missing "ops"'),
        ('{"space": "nb201", "ops": [1, 2], "adj": [[0, 1], [0, 0]]}', "list of op names"),
        ('{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 1]]}', "2 x 2"),
        ('{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 2], [0, 0]]}', "0 or 1"),
        ('{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 0], [1, 0]]}', "upper triangular"),
        ('{"space": "nb201", "ops": ["input", "conv9", "output"], "adj": [[0,1,0],[0,0,1],[0,0,0]]}', "unknown op"),
        ('{"space": "nb201", "ops": ["input", "none", "output"], "adj": [[0,1,0],[0,0,1],[0,0,0]]}', "8 nodes"),
    ],
)
def test_bad_lines_name_their_line_number(bad: str, fragment: str) -> None:
    lines = ["# header", bad] if bad.startswith("{") else [bad]
    number = 2 if bad.startswith("{") else 1
    with pytest.raises(ArchError) as err:
        read_archs(lines, None, "in.txt")
    assert str(err.value).startswith(f"in.txt, line {number}: ") and fragment in str(err.value)


def test_a_later_bad_line_is_reported() -> None:
    with pytest.raises(ArchError, match=r"f, line 3: .*unknown op"):
        read_archs([NB201, NB201, NB201.replace("none", "zero", 1)], None, "f")


def test_mixed_spaces_are_refused() -> None:
    with pytest.raises(ArchError, match="line 2: holds a enas cell, but space nb201"):
        read_archs([_json_line("nb201", NB201), _json_line("enas", ENAS)], None, "m")
    with pytest.raises(ArchError, match="line 1: holds a nb201 cell, but space enas"):
        read_archs([_json_line("nb201", NB201)], get_space("enas"), "m")
    with pytest.raises(ArchError, match="line 2: not an ENAS row"):
        read_archs([ENAS, NB201], None, "m")


def test_empty_input_is_an_error() -> None:
    with pytest.raises(ArchError, match="no architectures in empty.txt"):
        read_archs(["", "# only a comment", "   "], None, "empty.txt")


def test_ambiguous_native_text_asks_for_a_space(monkeypatch: pytest.MonkeyPatch) -> None:
    nb201 = get_space("nb201")
    monkeypatch.setattr(archtext, "SPACES", {"a": nb201, "b": nb201})
    with pytest.raises(ArchError, match="could be a cell of a or b; pass --space"):
        infer_native_space(NB201)


def test_node_limit_admits_larger_cells() -> None:
    row = str([[i % 6] + [1] * i for i in range(12)])
    with pytest.raises(ArchError, match="more than the 8"):
        read_archs([row], None, "big")
    assert read_archs([row], None, "big", node_limit=14)[0].arch.n_nodes == 14


def test_invalid_cells_are_refused() -> None:
    space = get_space("enas")
    arch = space.parse_native(ENAS)
    adj = arch.adj.copy()
    adj[3, 4] = 0
    line = json.dumps({"space": "enas", "ops": space.ops_names(arch), "adj": adj.tolist()})
    with pytest.raises(ArchError, match="line 1: node 3 does not feed node 4"):
        read_archs([line], None, "x")


def test_format_round_trips() -> None:
    for name, text in (("nb201", NB201), ("enas", ENAS), ("nb101", NB101)):
        space = get_space(name)
        arch = space.parse_native(text)
        assert format_arch(arch, space, "native") == text
        line = format_arch(arch, space, "jsonl", {"score": np.float32(0.5), "rank": np.int64(3), "gap": math.nan})
        assert json.loads(line) == {
            "space": name,
            "ops": space.ops_names(arch),
            "adj": arch.adj.tolist(),
            "score": 0.5,
            "rank": 3,
            "gap": None,
        }
        rec = read_archs([line], space, "r")[0]
        assert rec.arch == arch and rec.extra == {"score": 0.5, "rank": 3, "gap": None}


def test_format_refuses_bad_requests() -> None:
    space = get_space("nb201")
    arch = space.parse_native(NB201)
    with pytest.raises(ArchError, match="overwrite"):
        format_arch(arch, space, "jsonl", {"ops": 1})
    with pytest.raises(ArchError, match="unknown architecture text format"):
        format_arch(arch, space, "yaml")
