"""`svge data ...` and the global options, driven as a user drives them from a shell."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shlex
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from conftest import Runner, assert_one_line_error

from svge_cli import __version__, artifacts, commands
from svge_cli.cli import COMMANDS, cli
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import read_archs

NB201_HEADER = "index,arch,cifar10_valid_val,cifar10_valid_test,cifar10_test,params_mb"


def all_commands(group: click.Group = cli, path: tuple[str, ...] = ("svge",)):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def write_dvae_enas(path: Path, rows: int, seed: int = 3) -> list[str]:
    """D-VAE's final_structures6.txt layout: `[[op], [op, skip], ...], score` per line."""
    sp = get_space("enas")
    lines = [f"{sp.format_native(a)}, {0.7 + i * 1e-5:.5f}" for i, a in enumerate(sp.sample(rows, seed))]
    path.write_text("\n".join(lines) + "\n")
    return lines


def write_nb201_csv(path: Path, rows: int) -> None:
    """The layout of nb201_cifar10.csv: index, arch string, three accuracies, parameters."""
    sp = get_space("nb201")
    body = [
        f"{i},{sp.format_native(a)},{80 + i / 10},{81 + i / 10},{90 + i / 10},{0.1 + i / 100}"
        for i, a in enumerate(sp.sample(rows, 0))
    ]
    path.write_text("\n".join([NB201_HEADER, *body]) + "\n")


# ---------------------------------------------------------------- help and global options


def test_version(svge: Runner) -> None:
    result = svge("--version")
    assert result.code == 0 and result.out == f"svge, version {__version__}\n"


def test_help_lists_every_command_with_one_line(svge: Runner) -> None:
    result = svge("--help")
    assert result.code == 0
    listed = result.out.split("Commands:")[1].splitlines()
    for name in cli.list_commands(click.Context(cli)):
        assert sum(line.split()[:1] == [name] for line in listed) == 1, name


def test_every_command_module_is_listed_and_every_listed_command_exists() -> None:
    defined = {
        command.name: info.name
        for info in pkgutil.iter_modules(commands.__path__)
        for command in getattr(importlib.import_module(f"svge_cli.commands.{info.name}"), "COMMANDS", ())
    }
    assert defined == {name: module for name, (module, _) in COMMANDS.items()}


def test_help_and_data_commands_start_without_loading_torch() -> None:
    probe = (
        "import sys\nfrom svge_cli.cli import main\n"
        "for argv in (['--help'], ['data', 'sample', 'nb201', '-n', '1']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'botorch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("path", [p for p, _ in all_commands()], ids=" ".join)
def test_every_help_ends_with_a_runnable_example(
    svge: Runner, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]
) -> None:
    result = svge(*path[1:], "--help")
    assert result.code == 0
    blocks = (dict(all_commands())[path].help or "").rstrip().split("\n\n")
    example = blocks[-1].replace("\b", "").strip().splitlines()
    assert example[0] in ("Example:", "Examples:"), f"{' '.join(path)} --help does not end with an example"
    assert example[0] in result.out
    for _, command in all_commands():  # parse the examples for real, but run nothing
        if not isinstance(command, click.Group):
            monkeypatch.setattr(command, "callback", lambda *a, **k: None)
    for line in example[1:]:
        for words in pipeline(line):
            assert words[0] == "svge", line
            cli.main(words[1:], prog_name="svge", standalone_mode=False)


def pipeline(line: str) -> list[list[str]]:
    """The commands of a shell pipeline, each as its words."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(token)
    return commands


def test_workdir_option_wins_over_the_environment(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "n.csv", 20)
    assert svge("--workdir", "elsewhere", "data", "import", "nb201", "n.csv").code == 0
    assert (tmp_path / "elsewhere" / "nb201" / "dataset.h5").exists()
    assert not workdir.exists()
    assert svge("data", "import", "nb201", "n.csv").code == 0  # SVGE_WORKDIR
    assert (workdir / "nb201" / "dataset.h5").exists()


def test_quiet_silences_notes_but_not_errors(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "n.csv", 20)
    assert svge("-q", "data", "import", "nb201", "n.csv").stderr == ""
    assert_one_line_error(svge("--quiet", "data", "info", "missing.h5"), "missing.h5")


def test_debug_adds_the_traceback(svge: Runner, workdir: Path) -> None:
    result = svge("--debug", "data", "info", "missing.h5")
    assert result.code == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("svge: error: missing.h5")


def test_usage_mistakes_are_one_line_with_the_way_to_help(svge: Runner, workdir: Path) -> None:
    result = svge("data", "sample", "enas", "-n", "0")
    assert_usage_error(result, "'-n'", "svge data sample --help")
    assert_usage_error(svge("bogus"), "bogus")


def assert_usage_error(result, *words: str) -> None:
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("svge: error: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]


# ---------------------------------------------------------------- enumerate


def test_enumerate_nb201_counts_cells_and_classes_once(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    first = svge("data", "enumerate", "nb201", "-o", "all.h5")
    assert first.code == 0 and first.out == "nb201: 15,625 unique cells, 6,466 functionally distinct classes\n"
    assert "enumerating nb201 once" in first.stderr
    assert (workdir / "nb201" / "enumeration.h5").exists()
    ds = store.load_dataset(tmp_path / "all.h5", "nb201")
    assert len(ds) == 15_625 and len(np.unique(ds.labels["equiv_class"])) == 6_466
    again = svge("data", "enumerate", "nb201", "--json")
    assert json.loads(again.out) == {"space": "nb201", "cells": 15_625, "classes": 6_466}
    assert again.stderr == ""  # served from the cache


def test_enumerate_refuses_a_sampled_space(svge: Runner, workdir: Path) -> None:
    assert_one_line_error(svge("data", "enumerate", "enas"), "too large to enumerate", "svge data sample enas")


# ---------------------------------------------------------------- sample


@pytest.mark.parametrize("fmt", ["jsonl", "native"])
def test_sample_is_seeded_and_gives_n_valid_cells(svge: Runner, workdir: Path, fmt: str) -> None:
    first = svge("data", "sample", "enas", "-n", "7", "--seed", "3", "--format", fmt)
    again = svge("data", "sample", "enas", "-n", "7", "--seed", "3", "--format", fmt)
    other = svge("data", "sample", "enas", "-n", "7", "--seed", "4", "--format", fmt)
    assert first.code == 0 and first.out == again.out and first.out != other.out
    records = read_archs(first.lines, get_space("enas"), "sample")
    assert len(first.lines) == len(records) == 7
    assert all(r.space.name == "enas" for r in records)


def test_sample_writes_a_file(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    result = svge("data", "sample", "nb201", "-n", "4", "-o", "cells.txt", "--format", "native")
    assert result.code == 0 and result.out == ""
    lines = (tmp_path / "cells.txt").read_text().splitlines()
    assert len(lines) == 4 and all(line.startswith("|") for line in lines)
    assert (tmp_path / "cells.txt").stat().st_mode & 0o777 != 0o600  # a normal file, not mkstemp's private one


# ---------------------------------------------------------------- import


def test_import_dvae_enas_text_into_the_workspace(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_dvae_enas(tmp_path / "final_structures6.txt", 1_050)
    result = svge("data", "import", "enas", "final_structures6.txt")
    assert result.code == 0, result.stderr
    assert "imported 50 enas cells (45 train / 5 test)" in result.stderr
    ds = store.load_dataset(workdir / "enas" / "dataset.h5", "enas")
    assert len(ds) == 50 and (ds.split == artifacts.SPLIT_TRAIN).sum() == 45
    assert "ws_acc" in ds.labels


def test_second_import_needs_force_when_nobody_can_confirm(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "a.csv", 20)
    write_nb201_csv(tmp_path / "b.csv", 30)
    assert svge("data", "import", "nb201", "a.csv").code == 0
    target = workdir / "nb201" / "dataset.h5"
    before = target.read_bytes()
    assert_one_line_error(svge("data", "import", "nb201", "b.csv"), "--force")
    assert target.read_bytes() == before
    assert svge("data", "import", "nb201", "b.csv", "--force").code == 0
    assert len(store.load_dataset(target)) == 30


def test_second_import_asks_on_a_terminal(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "a.csv", 20)
    write_nb201_csv(tmp_path / "b.csv", 30)
    assert svge("data", "import", "nb201", "a.csv").code == 0
    target = workdir / "nb201" / "dataset.h5"
    declined = svge("data", "import", "nb201", "b.csv", stdin="n\n", tty=("stdin",))
    assert declined.code == 1 and "svge: error: kept the nb201 dataset" in declined.stderr
    assert len(store.load_dataset(target)) == 20
    accepted = svge("data", "import", "nb201", "b.csv", stdin="y\n", tty=("stdin",))
    assert accepted.code == 0 and len(store.load_dataset(target)) == 30


def test_import_to_a_file_leaves_the_workspace_alone(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "n.csv", 25)
    result = svge("data", "import", "nb201", "n.csv", "-o", "out/n.h5")
    assert result.code == 0 and "into out/n.h5" in result.stderr
    assert len(store.load_dataset(tmp_path / "out" / "n.h5", "nb201")) == 25
    assert not (workdir / "nb201" / "dataset.h5").exists()


def test_import_to_stdout_feeds_info(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "n.csv", 9)
    imported = svge("data", "import", "nb201", "n.csv", "-o", "-")
    assert imported.code == 0 and imported.stdout.startswith(b"\x89HDF")
    assert json.loads(svge("data", "info", "-", "--json", stdin=imported.stdout).out)["rows"] == 9


# ---------------------------------------------------------------- info


def test_info_of_a_file(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    write_nb201_csv(tmp_path / "n.csv", 25)
    svge("data", "import", "nb201", "n.csv", "-o", "n.h5")
    text = svge("data", "info", "n.h5")
    assert text.code == 0
    assert "n.h5: nb201 dataset, 25 rows (25 unique cells)" in text.out
    assert "cifar10_test" in text.out and "max=92.4" in text.out
    facts = json.loads(svge("data", "info", "n.h5", "--json").out)
    assert facts["rows"] == 25 and facts["space"] == "nb201"
    assert facts["labels"]["cifar10_test"]["max"] == pytest.approx(92.4)
    assert facts["labels"]["params_mb"]["min"] == pytest.approx(0.1)


def test_info_of_the_workspace(svge: Runner, workdir: Path, tmp_path: Path) -> None:
    assert_one_line_error(svge("data", "info"), "no datasets", "svge data import")
    write_nb201_csv(tmp_path / "n.csv", 25)
    write_dvae_enas(tmp_path / "e.txt", 1_020)
    svge("data", "import", "nb201", "n.csv")
    svge("data", "import", "enas", "e.txt")
    text = svge("data", "info")
    assert "enas dataset, 20 rows" in text.out and "nb201 dataset, 25 rows" in text.out
    assert "split: 18 train / 2 test" in text.out
    facts = json.loads(svge("data", "info", "--json").out)
    assert sorted((d["space"], d["rows"]) for d in facts["datasets"]) == [("enas", 20), ("nb201", 25)]


def test_threads_option_sets_torch_threads_for_model_commands(svge: Runner) -> None:
    before = torch.get_num_threads()
    try:
        assert svge("--threads", "2", "encode", "--help").code == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
