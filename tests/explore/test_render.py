"""Drawings of cells: the terminal table, the layered layout, PNG and SVG pictures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from cells import NB101_BEST
from rich.console import Console

from svge_cli.errors import SvgeError
from svge_cli.explore.render import (
    cell_table,
    describe,
    layers,
    layout,
    node_labels,
    save_cell_picture,
    save_circle_picture,
)
from svge_cli.spaces import get_space

NB101 = get_space("nb101")
ENAS = get_space("enas")
BEST = NB101.parse_native(NB101_BEST)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def text_of(table: object) -> str:
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_the_table_lists_nodes_in_order_with_ops_and_inputs() -> None:
    lines = [line.split("│")[1:4] for line in text_of(cell_table(NB101, BEST)).splitlines() if line.count("│") == 4]
    rows = [[c.strip() for c in cells] for cells in lines]
    assert rows[0] == ["0", "input", "-"]
    assert rows[4] == ["4", "conv3x3-bn-relu", "0, 3"]
    assert rows[6] == ["6", "output", "0, 5"]


def test_descriptions_say_when_a_cell_is_beyond_the_space() -> None:
    assert describe(NB101, BEST) == "nb101 cell: 7 nodes, 9 edges"
    big = ENAS.sample(1, seed=0, layers=12)[0]
    assert "beyond the space's 8 nodes" in describe(ENAS, big)


def test_labels_are_the_short_spellings() -> None:
    assert node_labels(NB101, BEST) == ["in", "conv3x3", "conv3x3", "conv3x3", "conv3x3", "conv1x1", "out"]
    assert node_labels(ENAS, ENAS.parse_native("[[0], [5, 1]]")) == ["in", "conv3", "max3", "out"]


def test_the_layout_runs_left_to_right_by_longest_path() -> None:
    assert layers(BEST) == [0, 1, 1, 2, 3, 4, 5]
    pos = layout(BEST)
    assert all(pos[int(u)][0] < pos[int(v)][0] for u, v in zip(*np.nonzero(BEST.adj)))
    assert np.isclose(pos[2][0] - pos[0][0], 1) and np.isclose(abs(pos[1][1] - pos[2][1]), 1)  # a unit grid
    assert pos[1][1] > pos[2][1]  # node 1 comes first in its column: on top


@pytest.mark.parametrize("suffix", [".png", ".svg", ".PNG"])
def test_pictures_are_valid_files_of_the_named_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cell{suffix}"
    save_cell_picture(path, NB101, BEST)
    data = path.read_bytes()
    if suffix.lower() == ".png":
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    else:
        assert ET.fromstring(data).tag.endswith("svg")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_other_formats_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    for name in ("cell.pdf", "cell"):
        with pytest.raises(SvgeError, match=".png or .svg"):
            save_cell_picture(tmp_path / name, NB101, BEST)
    assert not any(tmp_path.iterdir())


def test_a_circle_of_cells_is_one_picture(tmp_path: Path) -> None:
    cells = [(c, i % 3 != 2) for i, c in enumerate(ENAS.sample(6, seed=1))]
    save_circle_picture(tmp_path / "circle.png", ENAS, cells, "enas: a circle")
    save_circle_picture(tmp_path / "circle.svg", ENAS, cells, "enas: a circle")
    assert (tmp_path / "circle.png").read_bytes().startswith(PNG_MAGIC)
    svg = (tmp_path / "circle.svg").read_text()
    assert ET.fromstring(svg).tag.endswith("svg") and "step 5" in svg and "invalid" in svg


def test_cells_larger_than_the_space_can_be_drawn(tmp_path: Path) -> None:
    big = ENAS.sample(1, seed=2, layers=12)[0]
    save_cell_picture(tmp_path / "big.svg", ENAS, big)
    assert "beyond the space" in (tmp_path / "big.svg").read_text()
