"""Exploration commands: decode-circle, extrapolate, show."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from svge_cli.arch import Arch, ArchError
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
from svge_cli.explore.circle import chain_cell, walk
from svge_cli.explore.circle_report import circle_facts, circle_table, save_circle_latents
from svge_cli.explore.extrapolate import FAMILIES, grow, growth_rules
from svge_cli.explore.extrapolate_run import (
    default_seed,
    extrapolation_scorer,
    family_counts,
    note_family,
    top_lines,
)
from svge_cli.explore.extrapolate_run import (
    target_nodes as nodes_to_reach,
)
from svge_cli.model import checkpoints
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import infer_native_space, parse_json_arch, read_archs
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
        save_circle_latents(latents_out, sp, start_arch, result, ck.fingerprint())
    if output:
        title = (
            f"{sp.name}: circle through the latent point of the start cell\n"
            f"{steps} steps, radius {result.circle.radius:.3g}, seed {seed}\n{ck_path.name}"
        )
        render.save_circle_picture(output, sp, [(d.arch, d.valid) for d in result.decoded[:-1]], title)
        ui.note(f"wrote {output}")
    if as_json:
        emit_json(circle_facts(sp, start_arch, result, seed, ck_path))
        return
    _stdout_console().print(circle_table(sp, start_arch, result, seed))


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
    target_nodes = nodes_to_reach(sp, nodes, layers)
    rules = growth_rules(sp, max_edges)
    ck, ck_path = checkpoints.resolve(ui.workspace, sp.name, checkpoint, ui.note)
    refuse_overwriting_inputs({"-o": output}, {"--from": seed_cell, "checkpoint": ck_path})
    score, target = extrapolation_scorer(ui, sp, ck, proxy, device, seed)
    seed_origin = "--from"
    if seed_arch is None:
        seed_arch, seed_origin = default_seed(ui, sp, target)
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
    note_family(ui, sp, ranked, max_edges, max_candidates)
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
                "counts": family_counts(ranked),
                "top": [
                    {"rank": i, "predicted": s, "arch": sp.format_native(a)} for i, (a, s) in enumerate(best, start=1)
                ],
            }
        )
        if output == "-":
            return
    write_text_lines(output, top_lines(sp, best, target, fmt))


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
