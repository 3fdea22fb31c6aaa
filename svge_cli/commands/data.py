"""`svge data ...`: enumerate, sample, import and inspect architecture datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from svge_cli.commands.common import (
    file_output_option,
    json_option,
    output_option,
    refuse_binary_to_terminal,
    space_argument,
    text_format_option,
)
from svge_cli.console import Ui, emit_json
from svge_cli.errors import SvgeError
from svge_cli.spaces import SPACES, add_user_space, get_space, known_spaces
from svge_cli.storage import datasets, store
from svge_cli.storage.archtext import format_arch
from svge_cli.storage.importers import import_file
from svge_cli.storage.outputs import refuse_overwriting_inputs
from svge_cli.storage.store import write_text_lines


@click.group("data")
def data() -> None:
    """Enumerate, sample, import and inspect architecture datasets.

    \b
    Example:
      svge data sample nb201 -n 3 --format native
    """


@data.command("enumerate")
@space_argument
@file_output_option("Also write the enumeration as an HDF5 dataset here (-: stdout, and the summary goes to stderr).")
@json_option
@click.pass_obj
def enumerate_cmd(ui: Ui, space: str, output: str | None, as_json: bool) -> None:
    """Enumerate every unique cell of SPACE (nb101, nb201), cached in the workspace.

    \b
    Example:
      svge data enumerate nb201
    """
    to_stdout = output == store.STDIO
    if to_stdout and as_json:
        raise SvgeError("--json and -o - would both write to stdout; give -o a file name")
    refuse_binary_to_terminal(output or "")
    sp = get_space(space)
    cache = ui.workspace.enumeration_path(space)
    if sp.enumerable and not cache.exists():
        ui.note(f"enumerating {space} once (cached in {cache}) ...")
    ds = datasets.enumeration(sp, ui.workspace)
    if output:
        store.save_dataset(output, ds)
    facts = {"space": space, "cells": len(ds)}
    if "equiv_class" in ds.labels:
        facts["classes"] = int(len(np.unique(ds.labels["equiv_class"])))
    if as_json:
        emit_json(facts)
    else:
        extra = f", {facts['classes']:,} functionally distinct classes" if "classes" in facts else ""
        summary = f"{space}: {facts['cells']:,} unique cells{extra}"
        if to_stdout:
            ui.note(summary)
        else:
            click.echo(summary)


@data.command("sample")
@space_argument
@click.option("-n", "count", type=click.IntRange(min=1), default=100, show_default=True, help="How many cells.")
@click.option("--seed", type=int, default=0, show_default=True)
@output_option
@text_format_option
@click.pass_obj
def sample_cmd(ui: Ui, space: str, count: int, seed: int, output: str, fmt: str) -> None:
    """Draw N cells of SPACE uniformly at random, as text.

    \b
    Example:
      svge data sample enas -n 5 --seed 1
    """
    sp = get_space(space)
    cells = datasets.sample_cells(sp, ui.workspace, count, seed)
    write_text_lines(output, (format_arch(a, sp, fmt) for a in cells))
    if len(cells) < count:
        held = f"holds {sp.size:,} cells" if sp.size is not None else f"gave {len(cells):,} distinct cells to sampling"
        ui.note(f"asked for {count:,} cells, but {sp.name} {held}: all {len(cells):,} were written")


@data.command("import")
@space_argument
@click.argument("file", type=click.Path(dir_okay=False))
@file_output_option("Write the dataset here instead of the workspace (- for stdout).")
@click.option("--force", is_flag=True, help="Replace the workspace's dataset for SPACE without asking.")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Let a .pth file hold any Python object. Full unpickling runs whatever code the file "
    "carries: use it only for files from a source you trust [default: plain data and tensors].",
)
@click.pass_obj
def import_cmd(ui: Ui, space: str, file: str, output: str | None, force: bool, trust_pickle: bool) -> None:
    """Import a benchmark FILE (D-VAE ENAS text, NB201 CSV or .pth, NB101 .tfrecord, JSON lines).

    The dataset goes into the workspace, where train-vae, finetune and bo find it.

    \b
    Example:
      svge data import nb201 nb201_cifar10.csv
    """
    refuse_binary_to_terminal(output or "")
    sp = get_space(space)
    if not Path(file).exists():
        raise SvgeError(f"{file}: no such file")
    target = Path(output) if output else ui.workspace.dataset_path(space)
    refuse_overwriting_inputs({"-o" if output else "the workspace dataset": target}, {"FILE": file})
    if not output and target.exists() and not force:
        if not sys.stdin.isatty():
            raise SvgeError(f"{target} already holds the {space} dataset; pass --force to replace it")
        if not click.confirm(f"replace the {space} dataset in {target}?", err=True):
            raise SvgeError(f"kept the {space} dataset in {target}")
    ds = import_file(sp.name, Path(file), trust_pickle=trust_pickle)
    store.save_dataset(target, ds)
    for note in ds.notes:
        ui.note(note)
    info = datasets.summarize(ds)
    split = info.get("split")
    split_text = f" ({split['train']:,} train / {split['test']:,} test)" if split else ""
    ui.note(f"imported {info['rows']:,} {space} cells{split_text} into {target}")


@data.group("space")
def space_group() -> None:
    """User-defined cell spaces kept in the workspace (declared in a JSON spec, see docs/spaces.md).

    \b
    Example:
      svge data space list
    """


@space_group.command("add")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.pass_obj
def space_add_cmd(ui: Ui, spec: str) -> None:
    """Check the JSON spec SPEC and keep it in the workspace, so commands know the space by its name.

    `--space SPEC.json` on any command does the same.

    \b
    Example:
      svge data space add examples/toy_space.json
    """
    sp = add_user_space(Path(spec))
    click.echo(f"{sp.name}: {sp.description}")


@space_group.command("list")
@click.pass_obj
def space_list_cmd(ui: Ui) -> None:
    """The spaces svge knows: built-in ones and the workspace's user spaces.

    \b
    Example:
      svge data space list
    """
    for name in known_spaces():
        click.echo(f"{name}\t{get_space(name).description}")


@data.command("info")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True), required=False)
@json_option
@click.pass_obj
def info_cmd(ui: Ui, file: str | None, as_json: bool) -> None:
    """Summarise a dataset FILE (counts, label ranges, split), or every workspace dataset.

    \b
    Example:
      svge data info .svge/nb201/dataset.h5
    """
    paths = (
        [file] if file else [str(ui.workspace.dataset_path(s)) for s in SPACES if ui.workspace.dataset_path(s).exists()]
    )
    if not paths:
        raise SvgeError(f"no datasets in the workspace {ui.workspace.root}; import one with `svge data import`")
    summaries = [datasets.summarize(store.load_dataset(p)) | {"file": p} for p in paths]
    if as_json:
        emit_json(summaries[0] if file else {"datasets": summaries})
        return
    for s in summaries:
        click.echo(_format_summary(s))


def _format_summary(s: dict) -> str:
    lines = [f"{s['file']}: {s['space']} dataset, {s['rows']:,} rows ({s['unique_hashes']:,} unique cells)"]
    if s["source"]:
        lines.append(f"  source: {s['source']}")
    lines.append(f"  nodes {s['nodes'][0]}-{s['nodes'][1]}, edges {s['edges'][0]}-{s['edges'][1]}")
    if "split" in s:
        lines.append(f"  split: {s['split']['train']:,} train / {s['split']['test']:,} test")
    if s["labels"]:
        lines.append("  labels:")
        lines += [
            f"    {k:<22} n={v['count']:<7} min={_num(v['min']):<10} max={_num(v['max']):<10} mean={_num(v['mean'])}"
            for k, v in s["labels"].items()
        ]
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


COMMANDS = [data]
