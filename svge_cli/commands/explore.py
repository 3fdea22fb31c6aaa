"""Exploration commands: decode-circle, extrapolate, show."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from svge_cli import artifacts
from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Latents
from svge_cli.commands.common import (
    checkpoint_option,
    device_option,
    json_option,
    read_text_input,
    seed_option,
    space_option,
)
from svge_cli.console import Ui, emit_json
from svge_cli.errors import SvgeError
from svge_cli.explore import plots, render
from svge_cli.explore.circle import Walk, chain_cell, step_edits, walk
from svge_cli.explore.extrapolate import FAMILIES, Ranked, best_labelled, grow, growth_rules
from svge_cli.model import checkpoints
from svge_cli.model.predictor import is_finetuned, load_predictor
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import datasets, store
from svge_cli.storage.archtext import format_arch, infer_native_space, parse_json_arch, read_archs
from svge_cli.storage.outputs import refuse_overwriting_inputs
from svge_cli.storage.store import write_text_lines

#: node limit when reading a cell to draw or grow: larger cells are the point of these commands
_ANY_SIZE = 1_000
#: width of tables written to a pipe or file, wide enough for a cell's native text on one line
_PIPE_WIDTH = 200

picture_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also draw a picture here (.png or .svg)."
)


# ---------------------------------------------------------------- reading one cell


def read_one_cell(value: str, option: str, space: str | None) -> tuple[Arch, SearchSpace]:
    """The cell a --from / --start / ARCH value names: a native string, a JSON line, or a file holding one.

    The space's rules apply except its size budget, so cells grown by
    `svge extrapolate` can be read back.
    """
    if value == "-" or _is_file(value):
        lines, source = read_text_input(value)
    else:
        lines, source = [value], option
    cells = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    if len(cells) != 1:
        raise SvgeError(f"{source}: expected one architecture, found {len(cells)}")
    try:
        sp = get_space(space) if space else _space_of(cells[0])
        record = read_archs(cells, growth_rules(sp), source, node_limit=_ANY_SIZE)[0]
    except ArchError as e:
        raise ArchError(f"{e} ({option} takes a native string, a JSON line, or a file holding one)") from None
    return record.arch, sp


def _is_file(value: str) -> bool:
    """Whether `value` names a file; a long native string is no file name (the OS refuses it as one)."""
    try:
        return Path(value).is_file()
    except OSError:
        return False


def _space_of(text: str) -> SearchSpace:
    if text.lstrip().startswith("{"):
        return parse_json_arch(text, None)[1]
    return infer_native_space(text)


def _space_hint(space: str | None, checkpoint: str | None) -> str | None:
    """The space named by --space, else by the --checkpoint file; None when neither says."""
    if space or checkpoint is None:
        return space
    kind, name = store.peek(checkpoint)
    return name if kind == "checkpoint" else None


def _pick_space(ui: Ui, space: str | None, cell_space: SearchSpace | None) -> SearchSpace:
    """The space named (--space or checkpoint), else the cell's, else the workspace's latest space."""
    if space is not None:
        return get_space(space)
    if cell_space is not None:
        return cell_space
    name = ui.workspace.latest_space(ui.note)
    if name is None:
        raise SvgeError("no space given and no checkpoint in the workspace: pass --space")
    return get_space(name)


def _stdout_console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else _PIPE_WIDTH)


# ---------------------------------------------------------------- decode-circle


@click.command("decode-circle")
@space_option()
@checkpoint_option
@click.option(
    "--start",
    default=None,
    metavar="ARCH",
    help="Cell the circle passes through: native string, JSON line, or a file holding one "
    "[default: the space's simple chain cell].",
)
@click.option(
    "--steps", type=click.IntRange(min=2), default=14, show_default=True, help="Equidistant steps around the circle."
)
@click.option(
    "--radius",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Radius [default: the start's norm, i.e. the great circle around the origin].",
)
@picture_option
@click.option(
    "--latents-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the circle's latent points (HDF5 latents, step 0 .. STEPS).",
)
@json_option
@seed_option
@device_option
@click.pass_obj
def decode_circle_cmd(
    ui: Ui,
    space: str | None,
    checkpoint: str | None,
    start: str | None,
    steps: int,
    radius: float | None,
    output: str | None,
    latents_out: str | None,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Walk a circle through a cell's latent point in a random orthogonal direction, decoding each step.

    The circle passes through the start cell's latent mean z0 and leaves it in a
    random direction orthogonal to z0 (seeded); STEPS equidistant points later it
    is back at z0.  Every point is decoded greedily; the table shows what changed
    from step to step (the paper's Fig. 2).  docs/explore.md has the geometry.

    \b
    Example:
      svge decode-circle --space nb101 --steps 14 -o circle.png
    """
    if output:
        plots.figure_format(output)
    space = _space_hint(space, checkpoint)
    start_arch, start_space = read_one_cell(start, "--start", space) if start else (None, None)
    sp = _pick_space(ui, space, start_space)
    start_arch = start_arch if start_arch is not None else chain_cell(sp)
    ck, ck_path, model = checkpoints.load_model(ui.workspace, sp.name, checkpoint, device, ui.note)
    refuse_overwriting_inputs({"-o": output, "--latents-out": latents_out}, {"--start": start, "checkpoint": ck_path})
    result = walk(model, sp, start_arch, steps, seed, radius)
    if latents_out:
        _save_circle_latents(latents_out, sp, start_arch, result, ck.fingerprint())
    if output:
        title = (
            f"{sp.name}: circle through the latent point of the start cell\n"
            f"{steps} steps, radius {result.circle.radius:.3g}, seed {seed}\n{ck_path.name}"
        )
        render.save_circle_picture(output, sp, [(d.arch, d.valid) for d in result.decoded[:-1]], title)
        ui.note(f"wrote {output}")
    if as_json:
        emit_json(_circle_facts(sp, start_arch, result, seed, ck_path))
        return
    _stdout_console().print(_circle_table(sp, start_arch, result, seed))


def _circle_rows(sp: SearchSpace, result: Walk) -> list[dict[str, Any]]:
    return [
        {"step": k, "arch": _native_if_possible(sp, d.arch), "valid": d.valid, "reason": d.reason, "edits": e}
        for k, (d, e) in enumerate(zip(result.decoded, result.edits))
    ]


def _native_if_possible(sp: SearchSpace, arch: Arch) -> str | None:
    """The native text of a decoded graph, also an invalid one; None when that text would mean another graph.

    (An ENAS row always implies the chain edges, so a decode that lacks one has no faithful row.)
    """
    try:
        text = sp.format_native(arch)
        return text if sp.parse_native(text) == arch else None
    except ArchError:
        return None


def _circle_facts(sp: SearchSpace, start: Arch, result: Walk, seed: int, ck_path: Path) -> dict[str, Any]:
    valid = sum(d.valid for d in result.decoded[:-1])
    return {
        "space": sp.name,
        "checkpoint": str(ck_path),
        "start": sp.format_native(start),
        "steps": result.circle.steps,
        "radius": result.circle.radius,
        "seed": seed,
        "valid": valid,
        "distinct": len({sp.hash(d.arch) for d in result.decoded[:-1] if d.valid}),
        "points": _circle_rows(sp, result),
    }


def _circle_table(sp: SearchSpace, start: Arch, result: Walk, seed: int) -> Table:
    """One row for the start cell, then one per step; edits count changes from the row above."""
    steps = result.circle.steps
    table = Table(
        title=f"{sp.name}: circle of {steps} steps (radius {result.circle.radius:.3g}, seed {seed})",
        title_justify="left",
    )
    table.add_column("step", justify="right")
    table.add_column("cell")
    table.add_column("edits", justify="right")
    table.add_column("valid")
    table.add_row("start", escape(sp.format_native(start)), "", "yes")
    first = step_edits(start, result.decoded[0].arch)
    for row, d in zip(_circle_rows(sp, result), result.decoded):
        step = f"{row['step']} (= 0)" if row["step"] == steps else str(row["step"])
        edits = str(first if row["edits"] is None else row["edits"])
        valid = "yes" if d.valid else f"[red]no: {escape(d.reason or '')}[/red]"
        table.add_row(step, escape(row["arch"] or "-"), edits, valid)
    return table


def _save_circle_latents(path: str, sp: SearchSpace, start: Arch, result: Walk, fingerprint: str) -> None:
    points = result.circle.points.astype(np.float32)
    hashes = [""] * len(points)
    hashes[0] = hashes[-1] = sp.hash(start)
    store.save_latents(path, Latents(sp.name, points, np.zeros_like(points), np.asarray(hashes), fingerprint))


# ---------------------------------------------------------------- extrapolate


@click.command("extrapolate")
@space_option()
@checkpoint_option
@click.option(
    "--nodes",
    type=click.IntRange(min=3),
    default=None,
    help="Nodes of the grown cells [default: one more than the seed].",
)
@click.option(
    "--layers",
    type=click.IntRange(min=1),
    default=None,
    help="ENAS: layers of the grown cells (nodes = layers + 2), e.g. 12 or 14.",
)
@click.option(
    "--from",
    "seed_cell",
    default=None,
    metavar="ARCH",
    help="Seed cell: native string, JSON line, or a file holding one "
    "[default: the best labelled cell of the imported data].",
)
@click.option(
    "--family",
    type=click.Choice(FAMILIES),
    default="single",
    show_default=True,
    help="single = every single-node insertion; paper = the SVGe authors' 1,384 NB101 graphs.",
)
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="How many cells to print.")
@click.option(
    "--beam",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells kept and grown further at each step when growing by several nodes.",
)
@click.option(
    "--max-candidates",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Score at most this many cells per step (a seeded sample of larger families).",
)
@click.option(
    "--max-edges",
    type=click.IntRange(min=1),
    default=None,
    help="NB101: keep an edge limit for grown cells [default: none, as in the paper].",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where the top cells go; - is stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["native", "jsonl"]),
    default="native",
    show_default=True,
    help="Native strings (scores in # comments) or JSON lines with rank and score.",
)
@click.option(
    "--proxy",
    default=None,
    metavar="NAME",
    help="Rank by a zero-cost proxy of each cell's network (synflow, snip, ...) instead of a fine-tuned "
    "checkpoint [default: the checkpoint's regressor; synflow when the checkpoint has none].",
)
@json_option
@seed_option
@device_option
@click.pass_obj
def extrapolate_cmd(
    ui: Ui,
    space: str | None,
    checkpoint: str | None,
    nodes: int | None,
    layers: int | None,
    seed_cell: str | None,
    family: str,
    top: int,
    beam: int,
    max_candidates: int,
    max_edges: int | None,
    output: str,
    fmt: str,
    proxy: str | None,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Rank cells larger than any in training, grown from a seed cell, with a fine-tuned checkpoint.

    Every cell with one more node than the seed (a new node of any op at any
    position, any edges from earlier and to later nodes, valid in the space but
    for its size budget) is scored zero-shot; growing by several nodes repeats
    the step from the best cells.  docs/explore.md describes both families.

    \b
    Examples:
      svge extrapolate --space nb101 --nodes 8 --top 5
      svge extrapolate --space nb101 --family paper --format jsonl -o top.jsonl
      svge extrapolate --space enas --layers 12
    """
    space = _space_hint(space, checkpoint)
    seed_arch, seed_space = read_one_cell(seed_cell, "--from", space) if seed_cell else (None, None)
    sp = _pick_space(ui, space, seed_space)
    target_nodes = _target_nodes(sp, nodes, layers)
    rules = growth_rules(sp, max_edges)
    ck, ck_path = checkpoints.resolve(ui.workspace, sp.name, checkpoint, ui.note)
    refuse_overwriting_inputs({"-o": output}, {"--from": seed_cell, "checkpoint": ck_path})
    score, target = _extrapolation_scorer(ui, sp, ck, proxy, device, seed)
    seed_origin = "--from"
    if seed_arch is None:
        seed_arch, seed_origin = _default_seed(ui, sp, target)
    target_nodes = target_nodes or seed_arch.n_nodes + 1
    seed_score = float(score([seed_arch])[0])
    with ui.progress("extrapolate", total=None) as bar:
        ranked = grow(
            rules,
            seed_arch,
            target_nodes,
            score,
            family=family,
            beam=beam,
            limit=max_candidates,
            rng_seed=seed,
            on_step=lambda n, status: bar.advance(n, status),
        )
    ui.note(
        f"seed cell ({seed_origin}; {seed_arch.n_nodes} nodes), predicted {target} {seed_score:.6g}: "
        f"{sp.format_native(seed_arch)}"
    )
    _note_family(ui, sp, ranked, max_edges, max_candidates)
    best = ranked.top(top)
    if as_json:
        emit_json(
            {
                "space": sp.name,
                "checkpoint": str(ck_path),
                "target": target,
                "family": family,
                "seed": sp.format_native(seed_arch),
                "seed_predicted": seed_score,
                "nodes": target_nodes,
                "counts": _family_counts(ranked),
                "top": [
                    {"rank": i, "predicted": s, "arch": sp.format_native(a)} for i, (a, s) in enumerate(best, start=1)
                ],
            }
        )
        if output == "-":
            return
    write_text_lines(output, _top_lines(sp, best, target, fmt))


def _target_nodes(sp: SearchSpace, nodes: int | None, layers: int | None) -> int | None:
    if layers is not None:
        if not sp.layered:
            raise SvgeError(f"--layers is for spaces of layers such as ENAS, not {sp.name}; give --nodes")
        if nodes is not None and nodes != layers + 2:
            raise SvgeError(f"--layers {layers} means {layers + 2} nodes, but --nodes {nodes} was given")
        return layers + 2
    return nodes


def _extrapolation_scorer(
    ui: Ui, sp: SearchSpace, ck: artifacts.Checkpoint, proxy: str | None, device: str, seed: int
) -> tuple[Callable[[Sequence[Arch]], np.ndarray], str]:
    """What ranks the grown cells, and its name: the fine-tuned regressor, or a zero-cost proxy."""
    if proxy is None and is_finetuned(ck):
        predictor = load_predictor(ck, checkpoints.pick_device(device), ui)
        return predictor.from_archs, predictor.target
    from svge_cli.networks.proxies import check_proxy, proxy_scores
    from svge_cli.search.objectives import DEFAULT_PROXY

    if proxy is None:
        proxy = DEFAULT_PROXY
        ui.note(
            f"note: this {sp.name} checkpoint has no regressor (`svge finetune` makes one): ranking by the "
            f"zero-cost proxy {proxy} of each cell's untrained network, a proxy, not an accuracy"
        )
    check_proxy(proxy)
    return (lambda archs: proxy_scores(sp, list(archs), proxy, seed)), f"proxy:{proxy}"


def _default_seed(ui: Ui, sp: SearchSpace, target: str) -> tuple[Arch, str]:
    """The best labelled cell of the imported dataset; ranking by a proxy with no table, the chain cell."""
    if not target.startswith("proxy:"):
        return _best_imported(ui, sp, target)
    if sp.default_target is not None and datasets.workspace_dataset(sp, ui.workspace) is not None:
        return _best_imported(ui, sp, sp.default_target)
    return chain_cell(sp), "the space's chain cell; pass --from ARCH for another"


def _best_imported(ui: Ui, sp: SearchSpace, column: str) -> tuple[Arch, str]:
    """The best labelled cell of the workspace's imported dataset, and where it came from (for a note)."""
    ds = datasets.workspace_dataset(sp, ui.workspace)
    if ds is None:
        raise SvgeError(
            f"no imported {sp.name} dataset in {ui.workspace.root} to take the best cell from: "
            f"pass --from ARCH, or import labelled data with `svge data import {sp.name} FILE`"
        )
    arch, value = best_labelled(ds, column)
    return arch, f"the best labelled cell of {ui.workspace.dataset_path(sp.name)}, {column} = {value:.4g}"


def _family_counts(ranked: Ranked) -> dict[str, Any]:
    fam = ranked.family
    return {
        "cells": len(fam),
        "parts": fam.parts,
        "candidates": fam.candidates,
        "valid": fam.valid,
        "sampled": fam.sampled,
        "per_step": ranked.step_sizes,
    }


def _note_family(ui: Ui, sp: SearchSpace, ranked: Ranked, max_edges: int | None, limit: int) -> None:
    fam = ranked.family
    nodes = fam.cells[0].n_nodes
    if fam.sampled:
        ui.note(
            f"{fam.name} family at {nodes} nodes: {fam.valid:,} valid of {fam.candidates:,} candidate "
            f"insertions; a seeded sample of {len(fam):,} distinct cells was scored (--max-candidates {limit:,})"
        )
    else:
        parts = f" = {' + '.join(f'{n:,} {part}' for part, n in fam.parts.items())}" if len(fam.parts) > 1 else ""
        ui.note(
            f"{fam.name} family at {nodes} nodes: {len(fam):,} distinct valid cells{parts} "
            f"({fam.valid:,} valid of {fam.candidates:,} candidates)"
        )
    if len(ranked.step_sizes) > 1:
        ui.note(
            f"grown in {len(ranked.step_sizes)} steps, keeping the best cell(s) of each; cells scored per step: "
            + ", ".join(f"{n:,}" for n in ranked.step_sizes)
        )
    if sp.max_edges is not None and max_edges is None:
        ui.note(f"{sp.name}'s limit of {sp.max_edges} edges is lifted for grown cells (--max-edges sets one)")


def _top_lines(sp: SearchSpace, best: list[tuple[Arch, float]], target: str, fmt: str) -> list[str]:
    lines = []
    for rank, (arch, score) in enumerate(best, start=1):
        if fmt == "native":
            lines += [f"# {rank}: predicted {target} {score:.6g}", sp.format_native(arch)]
        else:
            lines.append(format_arch(arch, sp, "jsonl", {"rank": rank, "predicted": score}))
    return lines


# ---------------------------------------------------------------- show


@click.command("show")
@click.argument("arch", metavar="ARCH")
@space_option()
@picture_option
@click.pass_obj
def show_cmd(ui: Ui, arch: str, space: str | None, output: str | None) -> None:
    """Draw a cell: its nodes in order with their ops and inputs, and with -o as a picture.

    ARCH is a native string, a JSON line, or a file holding one (- for stdin).
    Cells larger than the space allows (grown by extrapolate) are drawn too.

    \b
    Examples:
      svge show '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|'
      svge show 'ops=conv3x3,maxpool;adj=0110/0001/0001/0000' -o cell.svg
    """
    if output:
        plots.figure_format(output)
    refuse_overwriting_inputs({"-o": output}, {"ARCH": arch})
    cell, sp = read_one_cell(arch, "ARCH", space)
    console = _stdout_console()
    console.print(render.describe(sp, cell), soft_wrap=True)
    console.print(render.cell_table(sp, cell))
    if output:
        render.save_cell_picture(output, sp, cell)
        ui.note(f"wrote {output}")


COMMANDS = [decode_circle_cmd, extrapolate_cmd, show_cmd]
