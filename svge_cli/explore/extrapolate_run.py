"""What `svge extrapolate` does around growing cells: the target size, the scorer, the seed cell, the
family counts it notes, and the lines it prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from svge_cli import artifacts
from svge_cli.arch import Arch
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.explore.circle import chain_cell
from svge_cli.explore.extrapolate import Ranked, best_labelled
from svge_cli.model import checkpoints
from svge_cli.model.predictor import is_finetuned, load_predictor
from svge_cli.spaces import SearchSpace
from svge_cli.storage import datasets
from svge_cli.storage.archtext import format_arch


def target_nodes(sp: SearchSpace, nodes: int | None, layers: int | None) -> int | None:
    """The node count to grow cells to, from --nodes or --layers; SvgeError when the two disagree.

    Args:
        sp: the search space; `layers` is only accepted for a space of layers such as ENAS.
        nodes: the node count asked for, or None.
        layers: the layer count asked for, or None; it means layers + 2 nodes (input and output added).

    Returns:
        The node count, or None when neither was given (the caller then grows by one node).
    """
    if layers is not None:
        if not sp.layered:
            raise SvgeError(f"--layers is for spaces of layers such as ENAS, not {sp.name}; give --nodes")
        if nodes is not None and nodes != layers + 2:
            raise SvgeError(f"--layers {layers} means {layers + 2} nodes, but --nodes {nodes} was given")
        return layers + 2
    return nodes


def extrapolation_scorer(
    ui: Ui, sp: SearchSpace, ck: artifacts.Checkpoint, proxy: str | None, device: str, seed: int
) -> tuple[Callable[[Sequence[Arch]], np.ndarray], str]:
    """What ranks the grown cells, and its name: the fine-tuned regressor, or a zero-cost proxy.

    Args:
        ui: the console that notes when the ranking falls back to a proxy.
        sp: the search space of the cells to score.
        ck: the checkpoint whose fine-tuned regressor ranks the cells when no proxy is asked for.
        proxy: the zero-cost proxy to rank by; None: the regressor, or the default proxy if there is none.
        device: where the regressor runs ("auto", "cpu" or "cuda"); unused when ranking by a proxy.
        seed: seeds the initialisation and input batch of the proxy's untrained networks.

    Returns:
        The scorer (higher is better) and its name: the regressor's target, or "proxy:" and the proxy's name.
    """
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


def default_seed(ui: Ui, sp: SearchSpace, target: str) -> tuple[Arch, str]:
    """The best labelled cell of the imported dataset; ranking by a proxy with no table, the chain cell.

    Args:
        ui: the console whose workspace holds the imported dataset.
        sp: the search space to take the seed cell from.
        target: the scorer's name: a label column to take the best cell by, or "proxy:..." (then the
            space's default column if a dataset is imported, else the chain cell).

    Returns:
        The seed cell and a phrase saying where it came from, for a note.
    """
    if not target.startswith("proxy:"):
        return best_imported(ui, sp, target)
    if sp.default_target is not None and datasets.workspace_dataset(sp, ui.workspace) is not None:
        return best_imported(ui, sp, sp.default_target)
    return chain_cell(sp), "the space's chain cell; pass --from ARCH for another"


def best_imported(ui: Ui, sp: SearchSpace, column: str) -> tuple[Arch, str]:
    """The best labelled cell of the workspace's imported dataset, and where it came from (for a note).

    Args:
        ui: the console whose workspace holds the imported dataset.
        sp: the search space whose dataset is read.
        column: the label column whose highest finite value picks the cell.

    Returns:
        The cell and a phrase naming the dataset file and the cell's value in `column`.
    """
    ds = datasets.workspace_dataset(sp, ui.workspace)
    if ds is None:
        raise SvgeError(
            f"no imported {sp.name} dataset in {ui.workspace.root} to take the best cell from: "
            f"pass --from ARCH, or import labelled data with `svge data import {sp.name} FILE`"
        )
    arch, value = best_labelled(ds, column)
    return arch, f"the best labelled cell of {ui.workspace.dataset_path(sp.name)}, {column} = {value:.4g}"


def family_counts(ranked: Ranked) -> dict[str, Any]:
    fam = ranked.family
    return {
        "cells": len(fam),
        "parts": fam.parts,
        "candidates": fam.candidates,
        "valid": fam.valid,
        "sampled": fam.sampled,
        "per_step": ranked.step_sizes,
    }


def note_family(ui: Ui, sp: SearchSpace, ranked: Ranked, max_edges: int | None, limit: int) -> None:
    """Note how many cells the last family held, how it grew, and whether the edge limit was lifted.

    Args:
        ui: the console the notes go to.
        sp: the search space, whose own edge limit is noted as lifted when `max_edges` is None.
        ranked: the result of growing, whose family and step sizes are counted.
        max_edges: the edge limit set for grown cells (--max-edges), or None when it was lifted.
        limit: the cap on candidates (--max-candidates), named when the family was sampled.
    """
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


def top_lines(sp: SearchSpace, best: list[tuple[Arch, float]], target: str, fmt: str) -> list[str]:
    """The text lines that list the best grown cells, ranked from 1.

    Args:
        sp: the search space the cells are written in.
        best: the (cell, predicted score) pairs, best first.
        target: the name of what the scores predict, written in the native format's comments.
        fmt: "native" (a "# rank: predicted" comment above each cell string) or "jsonl" (a JSON line each).

    Returns:
        The lines, without line ends.
    """
    lines = []
    for rank, (arch, score) in enumerate(best, start=1):
        if fmt == "native":
            lines += [f"# {rank}: predicted {target} {score:.6g}", sp.format_native(arch)]
        else:
            lines.append(format_arch(arch, sp, "jsonl", {"rank": rank, "predicted": score}))
    return lines


# ---------------------------------------------------------------- show
