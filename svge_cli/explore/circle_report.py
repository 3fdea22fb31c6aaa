"""What `svge decode-circle` reports of a walk: its rows, JSON facts, table and latents file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import Latents
from svge_cli.explore.circle import Walk, step_edits
from svge_cli.spaces import SearchSpace
from svge_cli.storage import store


def circle_rows(sp: SearchSpace, result: Walk) -> list[dict[str, Any]]:
    return [
        {"step": k, "arch": native_if_possible(sp, d.arch), "valid": d.valid, "reason": d.reason, "edits": e}
        for k, (d, e) in enumerate(zip(result.decoded, result.edits))
    ]


def native_if_possible(sp: SearchSpace, arch: Arch) -> str | None:
    """The native text of a decoded graph, also an invalid one; None when that text would mean another graph.

    (An ENAS row always implies the chain edges, so a decode that lacks one has no faithful row.)
    """
    try:
        text = sp.format_native(arch)
        return text if sp.parse_native(text) == arch else None
    except ArchError:
        return None


def circle_facts(sp: SearchSpace, start: Arch, result: Walk, seed: int, ck_path: Path) -> dict[str, Any]:
    """The JSON facts of a walk: its settings, counts of valid and distinct decodes, and every step's row.

    Args:
        sp: the search space the cells are written in.
        start: the cell the circle was drawn through.
        result: the walk whose circle and decodes are reported.
        seed: the seed the circle's direction was drawn with, reported as given.
        ck_path: the checkpoint file whose model decoded the walk, reported as a string.

    Returns:
        A JSON-ready dict; its valid and distinct counts leave out the last step, which repeats step 0.
    """
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
        "points": circle_rows(sp, result),
    }


def circle_table(sp: SearchSpace, start: Arch, result: Walk, seed: int) -> Table:
    """One row for the start cell, then one per step; edits count changes from the row above.

    Args:
        sp: the search space the cells are written in.
        start: the cell the circle was drawn through, shown in the first row.
        result: the walk whose decodes fill the step rows.
        seed: the seed the circle's direction was drawn with, shown in the title.

    Returns:
        A rich table with step, cell, edits and validity columns, invalid decodes giving their reason.
    """
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
    for row, d in zip(circle_rows(sp, result), result.decoded):
        step = f"{row['step']} (= 0)" if row["step"] == steps else str(row["step"])
        edits = str(first if row["edits"] is None else row["edits"])
        valid = "yes" if d.valid else f"[red]no: {escape(d.reason or '')}[/red]"
        table.add_row(step, escape(row["arch"] or "-"), edits, valid)
    return table


def save_circle_latents(path: str, sp: SearchSpace, start: Arch, result: Walk, fingerprint: str) -> None:
    """Write the walk's points as a latents file, with zero log-variances.

    Args:
        path: where the latents file goes.
        sp: the search space the points belong to, named in the file.
        start: the start cell, whose hash labels the first and last point (the others are left unlabelled).
        result: the walk whose circle points, of shape (steps + 1, D), are saved as float32.
        fingerprint: the fingerprint of the checkpoint whose model encoded the start cell.
    """
    points = result.circle.points.astype(np.float32)
    hashes = [""] * len(points)
    hashes[0] = hashes[-1] = sp.hash(start)
    store.save_latents(path, Latents(sp.name, points, np.zeros_like(points), np.asarray(hashes), fingerprint))


# ---------------------------------------------------------------- extrapolate
