"""Objectives: benchmark lookup, the external evaluator protocol and its failure modes, the surrogate."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from bo_helpers import NB201, TARGET, nb201_table, score_of

from svge_cli.errors import SvgeError
from svge_cli.search.objectives import (
    BenchmarkObjective,
    EvaluatorObjective,
    SurrogateObjective,
    covers_space,
    default_target,
)
from svge_cli.spaces import get_space

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "evaluator.py"
CELLS = [
    NB201.parse_native(s)
    for s in (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    )
]


def script(tmp_path: Path, body: str) -> str:
    """A throwaway evaluator: Python code run with this interpreter."""
    path = tmp_path / "evaluator.py"
    path.write_text("import sys, time\nlines = [l for l in sys.stdin]\n" + textwrap.dedent(body))
    return f"{sys.executable} {path}"


# ---------------------------------------------------------------- benchmark


def test_benchmark_looks_cells_up_by_canonical_hash() -> None:
    obj = BenchmarkObjective(nb201_table(), TARGET)
    out = obj.evaluate(NB201, CELLS)
    assert [o.score for o in out] == pytest.approx([score_of(NB201.format_native(c)) for c in CELLS])
    assert all(o.note is None for o in out)


def test_a_cell_missing_from_the_table_is_reported_not_fatal() -> None:
    table = nb201_table()
    keep = table.hashes != NB201.hash(CELLS[1])
    table.labels[TARGET][np.nonzero(table.hashes == NB201.hash(CELLS[2]))[0]] = np.nan
    out = BenchmarkObjective(table.subset(np.nonzero(keep)[0]), TARGET).evaluate(NB201, CELLS)
    assert out[0].score is not None
    assert out[1].score is None and "not in the benchmark table" in out[1].note
    assert out[2].score is None  # a NaN label counts as missing


def test_a_table_covers_the_space_only_when_every_cell_is_labelled() -> None:
    table = nb201_table()
    assert covers_space(NB201, table, TARGET)
    table.labels[TARGET][5] = np.nan
    assert not covers_space(NB201, table, TARGET)
    assert not covers_space(NB201, table.subset(np.arange(100)), TARGET)
    enas = get_space("enas")
    sample = enas.default_dataset(n=50)
    sample.labels["ws_acc"] = np.ones(50)
    assert not covers_space(enas, sample, "ws_acc")


def test_the_target_column_defaults_per_space_and_is_checked() -> None:
    table = nb201_table()
    with pytest.raises(SvgeError, match="pass --target .*index, equiv_class, acc"):
        default_target(NB201, table)
    table.labels["cifar10_valid_val"] = np.ones(len(table))
    assert default_target(NB201, table) == "cifar10_valid_val"
    with pytest.raises(SvgeError, match="no label column 'nope'"):
        BenchmarkObjective(table, "nope")


# ---------------------------------------------------------------- external evaluator


def test_the_example_evaluator_answers_one_score_per_cell_in_order() -> None:
    out = EvaluatorObjective(f"{sys.executable} {EXAMPLE}").evaluate(NB201, CELLS)
    assert [o.score for o in out] == pytest.approx([1.5, 0.0, 2 / 6 + 0.5 * 2 / 6])
    assert all(o.note is None for o in out)


def test_the_evaluator_receives_json_lines_with_the_native_string(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import json
        for l in lines:
            cell = json.loads(l)
            print(len(cell["native"]) if cell["space"] == "nb201" and len(cell["ops"]) == 8 else -1)
    """,
    )
    out = EvaluatorObjective(cmd).evaluate(NB201, CELLS)
    assert [o.score for o in out] == [len(NB201.format_native(c)) for c in CELLS]


def answer(tmp_path: Path, body: str, timeout: float | None = 10.0) -> list:
    """What an evaluator whose code is `body` gets for each cell (started once per cell)."""
    return EvaluatorObjective(script(tmp_path, body), timeout=timeout).evaluate(NB201, CELLS)


@pytest.mark.parametrize(
    "body, reason",
    [
        ('print("oops")\n', "'oops', not a number"),
        ('print("nan")\n', "not a finite score"),
        ("print('{\"score\": NaN}')\n", "not a finite score"),
        ("print('{\"cost\": 3}')\n", "not a finite score"),
        ("print(1); print(2); print(3)\n", "3 lines for one cell"),
        ("pass\n", "exited without answering"),
        ("sys.stdout.buffer.write(bytes([0xff, 0xfe]) + b'\\n')\n", "not UTF-8"),
        ("print(0.5, flush=True); sys.stderr.write('halfway\\n'); sys.exit(9)\n", "exited with status 9"),
    ],
)
def test_every_bad_answer_fails_its_cell_with_the_reason(tmp_path: Path, body: str, reason: str) -> None:
    out = answer(tmp_path, body)
    assert all(o.score is None and reason in o.note for o in out), [o.note for o in out]


def test_a_json_answer_gives_the_score_and_its_extra_fields(tmp_path: Path) -> None:
    out = answer(tmp_path, 'print(\'{"score": 0.75, "cost": 12.5, "epochs": 3}\')\n')
    assert [o.score for o in out] == [0.75] * 3
    assert out[0].extra == {"cost": 12.5, "epochs": 3}


def test_a_timeout_fails_the_cell_and_ends_the_evaluator(tmp_path: Path) -> None:
    out = answer(tmp_path, "time.sleep(60)\n", timeout=0.5)
    assert all(o.score is None and "timed out after 0.5 s" in o.note for o in out)


def test_a_failed_evaluator_leaves_its_exit_status_and_stderr_to_the_journal() -> None:
    from svge_cli.search.tasks import CellTask, run_cell

    code = "import sys; sys.stdin.read(); sys.stderr.write('CUDA out of memory\\n'); sys.exit(9)"
    result = run_cell(CellTask((sys.executable, "-c", code), "{}", 10.0))
    assert not result["ok"] and result["failure"] == "exit" and result["exit"] == 9
    assert "CUDA out of memory" in result["stderr"] and result["seconds"] >= 0


def test_an_evaluator_that_cannot_start_is_a_user_error() -> None:
    with pytest.raises(SvgeError, match="cannot start"):
        EvaluatorObjective("/no/such/program --flag")
    with pytest.raises(SvgeError, match="needs a command"):
        EvaluatorObjective("   ")
    with pytest.raises(SvgeError, match="cannot split"):
        EvaluatorObjective("python 'unclosed")


# ---------------------------------------------------------------- surrogate


def test_the_surrogate_keeps_table_labels_and_predicts_new_cells() -> None:
    table = nb201_table()
    rows = np.random.default_rng(0).choice(len(table), size=1500, replace=False)
    sample = table.subset(rows)
    obj = SurrogateObjective(sample, TARGET, NB201.vocab_size, seed=0)
    assert "SURROGATE" in obj.description
    known = sample.arch(0)
    unseen = [table.arch(i) for i in np.setdiff1d(np.arange(len(table)), rows)[:300]]
    out = obj.evaluate(NB201, [known] + unseen)
    assert out[0].score == sample.labels[TARGET][0] and out[0].note == "label from the table"
    assert all(o.note == "surrogate prediction" for o in out[1:])
    truth = [score_of(NB201.format_native(a)) for a in unseen]
    assert np.corrcoef([o.score for o in out[1:]], truth)[0, 1] > 0.95


def test_the_surrogate_needs_labels() -> None:
    table = nb201_table().subset(np.arange(10))
    table.labels[TARGET][:] = np.nan
    with pytest.raises(SvgeError, match="needs labelled cells"):
        SurrogateObjective(table, TARGET, NB201.vocab_size)
