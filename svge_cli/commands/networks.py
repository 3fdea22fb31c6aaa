"""Cells as networks: net (sizes and layers), score (zero-cost proxies), train-cell (CIFAR-10)."""
from __future__ import annotations

from typing import Any

import click

from ..archtext import ArchRecord, infer_native_space, parse_json_arch, read_archs
from ..checkpoints import pick_device
from ..console import Ui, emit_json, simple_table
from ..extrapolate import growth_rules
from ..spaces import SearchSpace, get_space
from .common import device_option, json_option, output_option, read_text_input, seed_option, space_option, \
    write_text_lines

#: networks build for cells of any size: extrapolated cells are the point
ANY_SIZE = 1_000

archs_argument = click.argument("archs", default="-", type=click.Path(dir_okay=False, allow_dash=True))
classes_option = click.option("--classes", type=click.IntRange(min=2), default=10, show_default=True,
                              help="Classes of the network's last layer.")


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
    Example:
      echo '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|' \\
        | svge net -
    """
    from ..networks import build
    from ..networks.counting import counts
    from ..networks.summary import layer_summary

    records, sp = read_cells(archs, space)
    rows: list[dict[str, Any]] = []
    for r in records:
        c = counts(r.arch, sp, num_classes=classes)
        rows.append({"space": sp.name, "cell": sp.format_native(r.arch), "line": r.line, "params": c.params,
                     "params_mb": round(c.params / 1e6, 6), "macs": c.macs, "input": [3, 32, 32]})
    if len(records) == 1:
        import torch

        with torch.device("meta"):
            model = build(records[0].arch, sp, num_classes=classes)
        layers = layer_summary(model)
        if as_json:
            rows[0]["layers"] = [{"name": x.name, "kind": x.kind, "out_shape": list(x.out_shape),
                                  "params": x.params, "macs": x.macs} for x in layers]
        shown = [x for x in layers if x.params or x.macs]
        ui.table(simple_table(f"{sp.name} network: {rows[0]['params']:,} parameters, "
                              f"{rows[0]['macs'] / 1e6:,.1f} M multiply-adds at 32x32",
                              ["layer", "kind", "output", "params", "multiply-adds"],
                              [[x.name, x.kind, "x".join(map(str, x.out_shape)), f"{x.params:,}", f"{x.macs:,}"]
                               for x in shown]))
    if as_json:
        import json

        write_text_lines(output, (json.dumps(row) for row in rows))
        return
    write_text_lines(output, (f"{row['params']}\t{row['macs']}\t{row['cell']}" for row in rows))


# ---------------------------------------------------------------- score


@click.command("score")
@archs_argument
@space_option()
@click.option("--proxy", required=True, help="synflow, grad_norm, snip, jacob_cov, naswot, params or flops.")
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True,
              help="Images in the batch the data-dependent proxies use.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="CIFAR-10 python batches to draw the batch from [default: a seeded random batch].")
@output_option
@json_option
@seed_option
@device_option
@click.pass_obj
def score_cmd(ui: Ui, archs: str, space: str | None, proxy: str, batch_size: int, data_dir: str | None,
              output: str, as_json: bool, seed: int, device: str) -> None:
    """Score each cell (a text file, or - for stdin) with a zero-cost proxy: one score per line, higher is better.

    The network of every cell is initialised from --seed and scored untrained.
    synflow needs no data; grad_norm, snip, jacob_cov and naswot use one batch of
    --batch-size images: seeded Gaussian noise with random labels, or a seeded
    draw from --data.  params and flops are counted without building anything.

    \b
    Example:
      svge data sample nb201 -n 100 --format native | svge score - --proxy synflow
    """
    from ..networks.proxies import NETWORK_SCORES, check_proxy, proxy_scores

    check_proxy(proxy)
    records, sp = read_cells(archs, space)
    batch = None
    if data_dir is not None and proxy in NETWORK_SCORES:
        batch = data_batch(data_dir, batch_size, seed)
    cells = [r.arch for r in records]
    with ui.progress(f"{proxy}", total=len(cells)) as bar:
        scores = proxy_scores(sp, cells, proxy, seed=seed, batch_size=batch_size, batch=batch,
                              device=pick_device(device), progress=bar.advance)
    if as_json:
        emit_json({"space": sp.name, "proxy": proxy, "seed": seed, "scores": scores})
        return
    write_text_lines(output, (f"{s:.6g}" for s in scores))


def data_batch(data_dir: str, batch_size: int, seed: int):
    """A seeded batch of training images and labels from a CIFAR-10 folder."""
    import numpy as np
    import torch

    from ..networks.cifar import load_cifar, to_tensor

    data = load_cifar(data_dir)
    rows = np.random.default_rng(seed).choice(len(data.train_x), size=min(batch_size, len(data.train_x)),
                                              replace=False)
    return to_tensor(data.train_x[rows]), torch.from_numpy(data.train_y[rows])


COMMANDS = [net_cmd, score_cmd]
