"""Cells as networks: net (sizes and layers), score (zero-cost proxies), train-cell (CIFAR-10)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from svge_cli.commands.common import (
    device_option,
    json_option,
    output_option,
    read_text_input,
    seed_option,
    space_option,
)
from svge_cli.console import Ui, emit_json, simple_table
from svge_cli.explore.extrapolate import growth_rules
from svge_cli.model.checkpoints import pick_device
from svge_cli.networks.proxies import PROXIES
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage.archtext import ArchRecord, infer_native_space, parse_json_arch, read_archs
from svge_cli.storage.outputs import refuse_overwriting_inputs
from svge_cli.storage.store import write_text_lines

#: networks build for cells of any size: extrapolated cells are the point
ANY_SIZE = 1_000

archs_argument = click.argument("archs", default="-", type=click.Path(dir_okay=False, allow_dash=True))
classes_option = click.option(
    "--classes", type=click.IntRange(min=2), default=10, show_default=True, help="Classes of the network's last layer."
)


def read_cells(path: str, space: str | None) -> tuple[list[ArchRecord], SearchSpace]:
    """The cells of a text file (or - for stdin); the space's rules apply except its size budget."""
    lines, source = read_text_input(path)
    sp = get_space(space) if space else _first_space(lines)
    records = read_archs(lines, growth_rules(sp) if sp is not None else None, source, node_limit=ANY_SIZE)
    return records, get_space(records[0].space.name)


def _first_space(lines: list[str]) -> SearchSpace | None:
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            try:
                return parse_json_arch(text, None)[1] if text.startswith("{") else infer_native_space(text)
            except Exception:  # noqa: BLE001 - read_archs reports the problem with its line number
                return None
    return None


# ---------------------------------------------------------------- net


@click.command("net")
@archs_argument
@space_option()
@classes_option
@output_option
@json_option
@click.pass_obj
def net_cmd(ui: Ui, archs: str, space: str | None, classes: int, output: str, as_json: bool) -> None:
    """Parameters and multiply-adds of each cell's benchmark network (a text file, or - for stdin).

    The network is the one the space's benchmark trains (NAS-Bench-101's
    3 stacks x 3 cells at 128 channels, NAS-Bench-201's C=16 N=5 TinyNetwork, the
    ENAS macro network with 96 filters) on 32 x 32 x 3 inputs.  Prints
    "params<TAB>multiply-adds<TAB>cell" per input line; for a single cell, also a
    layer table on stderr.  With --json, one JSON object per cell.  Cells larger
    than the space allows (extrapolation) build too.

    \b
    Examples:
      svge data sample nb201 -n 5 --format native | svge net -
      svge net cell.txt --json
    """
    from svge_cli.networks import build
    from svge_cli.networks.counting import counts
    from svge_cli.networks.summary import layer_summary

    refuse_overwriting_inputs({"-o": output}, {"ARCHS": archs})
    records, sp = read_cells(archs, space)
    rows: list[dict[str, Any]] = []
    for r in records:
        c = counts(r.arch, sp, num_classes=classes)
        rows.append(
            {
                "space": sp.name,
                "cell": sp.format_native(r.arch),
                "line": r.line,
                "params": c.params,
                "params_mb": round(c.params / 1e6, 6),
                "macs": c.macs,
                "input": [3, 32, 32],
            }
        )
    if len(records) == 1:
        import torch

        with torch.device("meta"):
            model = build(records[0].arch, sp, num_classes=classes)
        layers = layer_summary(model)
        if as_json:
            rows[0]["layers"] = [
                {"name": x.name, "kind": x.kind, "out_shape": list(x.out_shape), "params": x.params, "macs": x.macs}
                for x in layers
            ]
        shown = [x for x in layers if x.params or x.macs]
        ui.table(
            simple_table(
                f"{sp.name} network: {rows[0]['params']:,} parameters, "
                f"{rows[0]['macs'] / 1e6:,.1f} M multiply-adds at 32x32",
                ["layer", "kind", "output", "params", "multiply-adds"],
                [[x.name, x.kind, "x".join(map(str, x.out_shape)), f"{x.params:,}", f"{x.macs:,}"] for x in shown],
            )
        )
    if as_json:
        import json

        write_text_lines(output, (json.dumps(row) for row in rows))
        return
    write_text_lines(output, (f"{row['params']}\t{row['macs']}\t{row['cell']}" for row in rows))


# ---------------------------------------------------------------- score


@click.command("score")
@archs_argument
@space_option()
@click.option("--proxy", required=True, help=f"One of {', '.join(PROXIES)}.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
    help="Images in the batch the data-dependent proxies use.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="CIFAR-10 python batches to draw the batch from [default: a seeded random batch].",
)
@output_option
@json_option
@seed_option
@device_option
@click.pass_obj
def score_cmd(
    ui: Ui,
    archs: str,
    space: str | None,
    proxy: str,
    batch_size: int,
    data_dir: str | None,
    output: str,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Score each cell (a text file, or - for stdin) with a zero-cost proxy: one score per line, higher is better.

    The network of every cell is initialised from --seed and scored untrained.
    synflow needs no data; grad_norm, snip, jacob_cov and naswot use one batch of
    --batch-size images: seeded Gaussian noise with random labels, or a seeded
    draw from --data.  params and flops are counted without building anything.

    \b
    Example:
      svge data sample nb201 -n 100 --format native | svge score - --proxy synflow
    """
    from svge_cli.networks.proxies import ON_BATCH, PROXY_TABLE, check_proxy, proxy_scores

    check_proxy(proxy)
    refuse_overwriting_inputs({"-o": output}, {"ARCHS": archs})
    records, sp = read_cells(archs, space)
    batch = None
    if data_dir is not None and PROXY_TABLE[proxy].reads == ON_BATCH:
        batch = data_batch(data_dir, batch_size, seed)
    cells = [r.arch for r in records]
    with ui.progress(f"{proxy}", total=len(cells)) as bar:
        scores = proxy_scores(
            sp,
            cells,
            proxy,
            seed=seed,
            batch_size=batch_size,
            batch=batch,
            device=pick_device(device),
            progress=bar.advance,
        )
    if as_json:
        emit_json({"space": sp.name, "proxy": proxy, "seed": seed, "scores": scores})
        return
    write_text_lines(output, (f"{s:.6g}" for s in scores))


def data_batch(data_dir: str, batch_size: int, seed: int):
    """A seeded batch of training images and labels from a CIFAR-10 folder."""
    import numpy as np
    import torch

    from svge_cli.networks.cifar import load_cifar, to_tensor

    data = load_cifar(data_dir)
    rows = np.random.default_rng(seed).choice(len(data.train_x), size=min(batch_size, len(data.train_x)), replace=False)
    return to_tensor(data.train_x[rows]), torch.from_numpy(data.train_y[rows])


# ---------------------------------------------------------------- train-cell


@click.command("train-cell")
@click.argument("arch", required=False)
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(),
    help="Folder with CIFAR-10's python batches (data_batch_1..5, test_batch); nothing is downloaded.",
)
@space_option()
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Evaluator mode: train every cell on stdin (one per line) and print one validation accuracy "
    "per line, for `svge bo --evaluator`.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Initial learning rate (cosine-annealed to 0).",
)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option(
    "--valid-share",
    type=click.FloatRange(0, 0.9),
    default=0.1,
    show_default=True,
    help="Share of the training images held out for validation.",
)
@click.option("--no-augment", is_flag=True, help="Train without random crops and flips.")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint written after every epoch [default: <workdir>/<space>/train-cell/<run>.pt].",
)
@click.option("--resume", is_flag=True, help="Continue from --checkpoint (same cell, options and data).")
@json_option
@seed_option
@device_option
@click.pass_obj
def train_cell_cmd(
    ui: Ui,
    arch: str | None,
    data_dir: str,
    space: str | None,
    from_stdin: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    valid_share: float,
    no_augment: bool,
    checkpoint: str | None,
    resume: bool,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Train a cell's benchmark network on a local CIFAR-10 copy; print validation and test accuracy.

    ARCH is a native string, a JSON line, or a file holding one cell.  The recipe
    is NAS-Bench-201's (SGD, Nesterov momentum 0.9, cosine learning rate from
    --lr, weight decay 5e-4, crops and flips); a seeded --valid-share of the
    training images is held out for validation.  A checkpoint is written after
    every epoch; --resume continues an interrupted run exactly.

    \b
    Examples:
      svge train-cell cell.txt --data cifar-10-batches-py --epochs 12
      svge bo --space nb201 --evaluator 'svge train-cell --stdin --epochs 12 --data cifar-10-batches-py'
    """
    from svge_cli.commands.explore import _ANY_SIZE, read_one_cell
    from svge_cli.errors import SvgeError
    from svge_cli.networks.cifar import batch_files, load_cifar
    from svge_cli.networks.training import TrainConfig, run_key, train_cell

    if from_stdin == (arch is not None):
        raise SvgeError("give one ARCH, or --stdin to read cells from stdin (not both)")
    if from_stdin and (resume or checkpoint):
        raise SvgeError("--stdin trains many cells: --checkpoint and --resume are for one ARCH")
    if from_stdin and valid_share == 0:
        raise SvgeError("--stdin prints each cell's validation accuracy as its score; --valid-share 0 holds none out")
    train_files, test_file = batch_files(data_dir)
    inputs = [("ARCH", arch)] + [("--data", p) for p in [*train_files, test_file]]
    refuse_overwriting_inputs({"--checkpoint": checkpoint}, inputs)
    dev = pick_device(device)
    data = load_cifar(data_dir)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        valid_share=valid_share,
        augment=not no_augment,
        seed=seed,
    )
    if from_stdin:
        records, sp = read_cells("-", space)
        cells = [r.arch for r in records]
    else:
        cell, sp = read_one_cell(arch, "ARCH", space)
        cells = [growth_rules(sp).check(cell, _ANY_SIZE)]
    results = []
    for i, cell in enumerate(cells):
        path = (
            Path(checkpoint)
            if checkpoint
            else ui.workspace.space_dir(sp.name) / "train-cell" / f"{run_key(sp, cell, cfg)}.pt"
        )
        label = f"cell {i + 1}/{len(cells)}" if len(cells) > 1 else "train"
        with ui.progress(label, total=epochs) as bar:
            result = train_cell(
                sp,
                cell,
                data,
                cfg,
                dev,
                checkpoint=path,
                resume=resume,
                on_epoch=lambda st: bar.advance(1, f"loss {st['train_loss']:.3f} valid {_accuracy(st['valid_acc'])}"),
            )
        ui.note(
            f"{sp.format_native(cell)}: validation {_accuracy(result.valid_acc)}, test {result.test_acc:.2f}% "
            f"after {result.epochs} epochs ({result.params:,} parameters; checkpoint {path})"
        )
        results.append((cell, result, path))
        if from_stdin:
            click.echo(f"{result.valid_acc:.4f}")
    if from_stdin:
        return
    cell, result, path = results[0]
    if as_json:
        emit_json(
            {
                "space": sp.name,
                "cell": sp.format_native(cell),
                "valid_acc": None if math.isnan(result.valid_acc) else result.valid_acc,
                "test_acc": result.test_acc,
                "epochs": result.epochs,
                "params": result.params,
                "checkpoint": str(path),
                "history": result.history,
            }
        )
        return
    click.echo(f"validation accuracy: {_accuracy(result.valid_acc)}")
    click.echo(f"test accuracy: {result.test_acc:.2f}%")


def _accuracy(value: float) -> str:
    """A validation accuracy for people; with --valid-share 0 there is none, and it says so rather than nan%."""
    return "none (--valid-share 0 holds no images out)" if math.isnan(value) else f"{value:.2f}%"


COMMANDS = [net_cmd, score_cmd, train_cell_cmd]
