"""Drawings of cells: a rich table for the terminal, and pictures (PNG or SVG) with matplotlib.

Figures are built with matplotlib's object API (no pyplot): no global state, no
window, no display needed, and saving picks the Agg or SVG canvas by format.

Pictures lay a cell out in layers from left to right: a node's layer is the
length of the longest path from the input to it, so every edge points right,
and networkx's multipartite layout stacks each layer's nodes in a column.
Edges that skip layers are drawn as arcs so that they do not run through the
nodes in between.  Each operation has its own colour in every picture, so the
cells of a circle can be compared at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle as CirclePatch
from matplotlib.patches import FancyArrowPatch
from rich.table import Table

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch
from svge_cli.explore.plots import figure_format, save_figure
from svge_cli.spaces import SearchSpace

#: short labels for op names that no space alias shortens
_SHORT_NAMES = {
    "input": "in",
    "output": "out",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv1x1",
    "nor_conv_3x3": "conv3x3",
    "avg_pool_3x3": "avgpool",
}
_END_COLOUR = "#d9d9d9"
_OP_COLOURS = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69", "#fccde5", "#ffffb3")
_INVALID_COLOUR = "#c62828"
#: how far (grid units: one layer / one row apart) an arc keeps from the centre of a node it passes
_CLEARANCE = 0.45
#: margins (grid units) around the outermost nodes, and beyond the farthest point of an arc
_PAD_X, _PAD_Y, _PAD_ARC = 0.5, 0.45, 0.1
#: inches per layer and per row in a picture of one cell
_INCH_X, _INCH_Y = 1.25, 0.6
#: circle picture, in figure fractions: radius of the ring of step marks, and of the ring of cells
_RING, _CELLS_AT = 0.2, 0.37


# ---------------------------------------------------------------- labels and terminal


def node_labels(space: SearchSpace, arch: Arch) -> list[str]:
    """A short label per node: the shortest spelling the space accepts for its type."""
    shortest: dict[str, str] = {}
    for alias, full in space.aliases().items():
        if len(alias) < len(shortest.get(full, full)):
            shortest[full] = alias
    names = space.ops_names(arch)
    return [_SHORT_NAMES.get(name, shortest.get(name, name)) for name in names]


def cell_table(space: SearchSpace, arch: Arch) -> Table:
    """The cell as a table: each node in order, its operation and the nodes it reads from."""
    table = Table()
    table.add_column("node", justify="right")
    table.add_column("op")
    table.add_column("inputs")
    for v, name in enumerate(space.ops_names(arch)):
        inputs = ", ".join(str(u) for u in arch.predecessors(v)) or "-"
        table.add_row(str(v), name, inputs)
    return table


def describe(space: SearchSpace, arch: Arch) -> str:
    """One line about a cell's size, saying when it is larger than the space's own cells."""
    text = f"{space.name} cell: {arch.n_nodes} nodes, {arch.n_edges} edges"
    beyond = []
    if arch.n_nodes > space.max_nodes:
        beyond.append(f"{space.max_nodes} nodes")
    if space.max_edges is not None and arch.n_edges > space.max_edges:
        beyond.append(f"{space.max_edges} edges")
    if beyond:
        text += f" (beyond the space's {' and '.join(beyond)})"
    return text


# ---------------------------------------------------------------- one cell on an axes


def layers(arch: Arch) -> list[int]:
    """Longest-path depth of each node from the input (nodes are in topological order)."""
    depth = [0] * arch.n_nodes
    for v in range(1, arch.n_nodes):
        preds = arch.predecessors(v)
        depth[v] = max((depth[u] + 1 for u in preds), default=0)
    # the output sits in the last column even when a short path reaches it
    depth[-1] = max(depth[-1], max(depth[:-1], default=0) + 1)
    return depth


def layout(arch: Arch) -> dict[int, np.ndarray]:
    """Node positions on a unit grid: layer k at x = k, the nodes of a layer one apart in y.

    Within a layer, nodes sit in the order of the mean row of their predecessors
    (one barycentre pass, first row on top); networkx's multipartite layout
    places them, and its coordinates are rescaled to the grid.
    """
    depth = layers(arch)
    row: dict[int, float] = {}
    columns: dict[int, list[int]] = {}
    for d in range(max(depth) + 1):
        members = [v for v in range(arch.n_nodes) if depth[v] == d]
        members.sort(key=lambda v: (np.mean([row[u] for u in arch.predecessors(v)] or [0.5]), v))
        for rank, v in enumerate(members):
            row[v] = rank / max(len(members) - 1, 1)
        columns[d] = members[::-1]  # the layout stacks a column upwards: the first row goes last
    g = nx.DiGraph()
    g.add_nodes_from(range(arch.n_nodes))
    pos = nx.multipartite_layout(g, subset_key=columns)
    unit = (pos[arch.n_nodes - 1][0] - pos[0][0]) / max(depth[-1], 1)  # the layout's distance between columns
    return {v: np.asarray(p) / unit for v, p in pos.items()}


def node_colour(t: int) -> str:
    if t in (INPUT_TYPE, OUTPUT_TYPE):
        return _END_COLOUR
    return _OP_COLOURS[(t - 2) % len(_OP_COLOURS)]


@dataclass(frozen=True)
class _Geometry:
    """Where a cell's nodes go, how far each edge bulges, and the data limits that hold it all."""

    pos: dict[int, np.ndarray]
    bulge: dict[tuple[int, int], float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    @classmethod
    def of(cls, arch: Arch) -> _Geometry:
        pos = layout(arch)
        edges = [(int(u), int(v)) for u, v in zip(*np.nonzero(arch.adj))]
        bulge, ties = {}, dict.fromkeys(range(arch.n_nodes), 0)
        for u, v in edges:
            up, down = _arc_heights(pos, u, v)
            if up == down and up > 0:  # either side will do: alternate the arcs leaving u
                ties[u] += 1
                bulge[(u, v)] = up if ties[u] % 2 else -down
            else:
                bulge[(u, v)] = up if up < down else -down
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        peaks = [(pos[u][1] + pos[v][1]) / 2 + h for (u, v), h in bulge.items()]  # an arc's farthest point
        low = min([min(ys) - _PAD_Y] + [y - _PAD_ARC for y in peaks])
        high = max([max(ys) + _PAD_Y] + [y + _PAD_ARC for y in peaks])
        return cls(pos, bulge, (min(xs) - _PAD_X, max(xs) + _PAD_X), (low, high))


def draw_cell(
    ax: Axes, space: SearchSpace, arch: Arch, title: str | None = None, fontsize: float = 9, title_colour: str = "black"
) -> None:
    """Draw one cell on `ax`: op labels in coloured boxes, arrows between them.

    An edge is straight unless it would run through a node; then it arcs over
    (or under) the nodes in between.

    Args:
        ax: the axes to draw on; its place and size in the figure scale the text and arcs, so set them first.
        space: the search space whose op names label the nodes.
        arch: the cell to draw.
        title: the title above the cell; None or empty for none.
        fontsize: the largest label size in points, shrunk until every label fits its column and row.
        title_colour: the title's colour (circle pictures use red for invalid decodes).
    """
    geo = _Geometry.of(arch)
    pos = geo.pos
    ax.set_xlim(*geo.xlim)
    ax.set_ylim(*geo.ylim)
    ax.set_axis_off()
    box = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    per_x = box.width * fig_w / np.ptp(geo.xlim)  # inches per grid unit
    per_y = box.height * fig_h / np.ptp(geo.ylim)
    labels = node_labels(space, arch)
    # shrink the text until the widest label fits its column and a box fits between rows
    widest = max(len(label) for label in labels)
    fontsize = min(fontsize, 0.7 * 72 * per_x / (0.62 * widest + 0.9))
    if max(np.bincount(layers(arch))) > 1:
        fontsize = min(fontsize, 0.5 * 72 * per_y)
    boxes = {
        v: ax.text(
            *pos[v],
            label,
            ha="center",
            va="center",
            fontsize=fontsize,
            zorder=2,
            bbox={"boxstyle": "round,pad=0.35", "fc": node_colour(int(arch.ops[v])), "ec": "#444444", "lw": 0.8},
        )
        for v, label in enumerate(labels)
    }
    # arc3 bends by a fraction of the chord's length on screen: turn bulges in data units into that fraction
    for (u, v), h in geo.bulge.items():
        chord = np.hypot((pos[v][0] - pos[u][0]) * per_x, (pos[v][1] - pos[u][1]) * per_y)
        rad = -2 * h * per_y / chord  # arc3: a positive rad bends to the right of the direction of travel
        # drawn after the boxes (higher zorder), so the boxes have their size when arrows are clipped to them
        ax.add_patch(
            FancyArrowPatch(
                pos[u],
                pos[v],
                arrowstyle="-|>",
                mutation_scale=6 + fontsize / 2,
                connectionstyle=f"arc3,rad={rad:.4f}",
                lw=0.9,
                color="#333333",
                zorder=3,
                patchA=boxes[u].get_bbox_patch(),
                patchB=boxes[v].get_bbox_patch(),
            )
        )
    if title:
        ax.set_title(title, fontsize=max(fontsize + 1, 8), color=title_colour)


def _arc_heights(pos: dict[int, np.ndarray], u: int, v: int) -> tuple[float, float]:
    """How far (grid units) edge u -> v must bulge up, and down, to clear the nodes it passes; (0, 0) if none.

    An arc3 curve's offset from its chord at fraction t of the way is 4 h t (1 - t)
    for a bulge h in the middle, so h is the largest clearance needed, divided by that.
    """
    a, b = pos[u], pos[v]
    between = []
    for w, p in pos.items():
        t = (p[0] - a[0]) / (b[0] - a[0])
        if w not in (u, v) and 1e-9 < t < 1 - 1e-9:
            between.append((t, p[1] - (a[1] + (b[1] - a[1]) * t)))  # (where, height above the chord)
    if all(abs(dy) >= _CLEARANCE for _, dy in between):
        return 0.0, 0.0
    up = max(((dy + _CLEARANCE) / (4 * t * (1 - t)) for t, dy in between if dy > -_CLEARANCE), default=0.0)
    down = max(((_CLEARANCE - dy) / (4 * t * (1 - t)) for t, dy in between if dy < _CLEARANCE), default=0.0)
    return up, down


# ---------------------------------------------------------------- pictures


def cell_figure(space: SearchSpace, arch: Arch, title: str | None = None) -> Figure:
    """A figure of one cell, sized to its layers and their heights.

    Args:
        space: the search space whose op names label the nodes.
        arch: the cell to draw.
        title: the figure's title; None or empty uses the one-line size description of `describe`.

    Returns:
        A bare matplotlib Figure (no pyplot) holding one axes with the cell.
    """
    geo = _Geometry.of(arch)
    fig = Figure(figsize=(_INCH_X * np.ptp(geo.xlim), _INCH_Y * np.ptp(geo.ylim) + 0.4))
    ax = fig.add_subplot()
    draw_cell(ax, space, arch, title or describe(space, arch))
    return fig


def save_cell_picture(path: str | Path, space: SearchSpace, arch: Arch, title: str | None = None) -> None:
    """Write a picture of one cell, its format picked by the path's extension.

    Args:
        path: the picture file to write, ending in .png or .svg (checked before anything is drawn).
        space: the search space whose op names label the nodes.
        arch: the cell to draw.
        title: the picture's title; None or empty uses the one-line size description of `describe`.
    """
    figure_format(path)
    save_figure(cell_figure(space, arch, title), path)


def circle_figure(space: SearchSpace, cells: Sequence[tuple[Arch, bool]], title: str) -> Figure:
    """Cells placed clockwise around a circle from 12 o'clock (the paper's Fig. 2).

    `cells` holds (cell, valid) per step; invalid decodes get a red title.  An
    inner dashed ring marks the steps, each cell sits outside its mark.

    Args:
        space: the search space whose op names label the nodes.
        cells: one (cell, valid) pair per step, in walking order.
        title: the text in the middle of the ring.

    Returns:
        A bare 18 by 18 inch matplotlib Figure (no pyplot).
    """
    k = len(cells)
    fig = Figure(figsize=(18, 18))
    ring = fig.add_axes((0, 0, 1, 1))
    ring.set_xlim(0, 1)
    ring.set_ylim(0, 1)
    ring.set_axis_off()
    ring.add_patch(CirclePatch((0.5, 0.5), _RING, fill=False, ls="--", lw=1, color="#9e9e9e"))
    ring.text(0.5, 0.5, title, ha="center", va="center", fontsize=13)
    size = min(0.26, 0.95 * 2 * np.pi * _CELLS_AT / k)
    for i, (arch, valid) in enumerate(cells):
        angle = np.pi / 2 - 2 * np.pi * i / k
        direction = np.array([np.cos(angle), np.sin(angle)])
        mark = 0.5 + _RING * direction
        ring.plot(*mark, "o", color="#616161", ms=6)
        ring.text(*(0.5 + (_RING - 0.025) * direction), str(i), ha="center", va="center", fontsize=9, color="#616161")
        cx, cy = 0.5 + _CELLS_AT * direction
        ax = fig.add_axes((cx - size / 2, cy - size * 0.3, size, size * 0.6))
        label = f"step {i}" + ("" if valid else " (invalid)")
        draw_cell(ax, space, arch, label, title_colour="black" if valid else _INVALID_COLOUR)
    return fig


def save_circle_picture(path: str | Path, space: SearchSpace, cells: Sequence[tuple[Arch, bool]], title: str) -> None:
    """Write the picture of `circle_figure`, its format picked by the path's extension.

    Args:
        path: the picture file to write, ending in .png or .svg (checked before anything is drawn).
        space: the search space whose op names label the nodes.
        cells: one (cell, valid) pair per step, in walking order; invalid ones get a red title.
        title: the text in the middle of the ring.
    """
    figure_format(path)
    save_figure(circle_figure(space, cells, title), path)
