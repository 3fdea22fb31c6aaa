"""Network builders: parameter counts against published and hand-computed facts, shapes, counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cells import NB101_RECORD

from svge_cli.arch import Arch, ArchError
from svge_cli.networks import build, count_params, infer_space, params_of
from svge_cli.networks.counting import counts
from svge_cli.networks.nb101 import vertex_channels
from svge_cli.networks.summary import layer_summary
from svge_cli.spaces import get_space

NB101 = get_space("nb101")
NB201 = get_space("nb201")
ENAS = get_space("enas")

#: (cell, params) as published: NAS-Bench-201's table (params_mb x 1e6) and NAS-Bench-101's (params)
NB201_PUBLISHED = [
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|", 129_306),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", 802_426),
]
NB101_PUBLISHED = [
    (NB101_RECORD["ops"], NB101_RECORD["adj"], NB101_RECORD["params"]),
    (
        [
            "input",
            "conv1x1-bn-relu",
            "conv1x1-bn-relu",
            "conv3x3-bn-relu",
            "conv1x1-bn-relu",
            "conv3x3-bn-relu",
            "output",
        ],
        [
            [0, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        5_878_154,
    ),
]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
#: an 8-node NB101 cell (beyond the benchmark's 7), as extrapolation proposes
NB101_8 = (
    "ops=conv3x3,conv3x3,maxpool,conv1x1,conv3x3,conv1x1;adj=01100000/00010000/00011000/00000100/"
    "00000010/00000001/00000001/00000000"
)


def nb101_cell(ops: list[str], adj: list[list[int]]) -> Arch:
    return Arch(np.asarray([NB101.type_index(o) for o in ops]), np.asarray(adj))


@pytest.mark.parametrize("text,params", NB201_PUBLISHED)
def test_nb201_counts_match_the_benchmark(text: str, params: int) -> None:
    arch = NB201.parse_native(text)
    assert counts(arch, "nb201").params == params
    assert params_of(arch, "nb201") == params


def test_nb201_without_cell_parameters_is_the_skeleton_counted_by_hand() -> None:
    stem = 3 * 16 * 9 + 2 * 16
    reductions = sum(a * b * 9 + 2 * b + b * b * 9 + 2 * b + a * b for a, b in ((16, 32), (32, 64)))
    head = 2 * 64 + 64 * 10 + 10
    assert params_of(NB201.parse_native(ALL_NONE), "nb201") == stem + reductions + head == 73_306


@pytest.mark.parametrize("ops,adj,params", NB101_PUBLISHED)
def test_nb101_counts_match_the_benchmark(ops: list[str], adj: list[list[int]], params: int) -> None:
    arch = nb101_cell(ops, adj)
    assert counts(arch, "nb101").params == params
    assert params_of(arch, "nb101") == params


def test_channel_split_follows_nasbench() -> None:
    # three vertices feed the output: 128 = 43 + 43 + 42; vertex 1 feeds only vertex 2 and takes its width
    adj = np.zeros((5, 5), dtype=int)
    for u, v in [(0, 1), (1, 2), (0, 3), (2, 4), (3, 4), (0, 2), (1, 4)]:
        adj[u, v] = 1
    assert vertex_channels(128, 128, adj) == [128, 43, 43, 42, 128]
    adj2 = np.zeros((4, 4), dtype=int)
    for u, v in [(0, 1), (1, 2), (2, 3)]:
        adj2[u, v] = 1
    assert vertex_channels(64, 128, adj2) == [64, 128, 128, 128]


def _cells() -> list[tuple[str, Arch, dict]]:
    return (
        [("nb101", nb101_cell(o, a), {}) for o, a, _ in NB101_PUBLISHED]
        + [("nb101", NB101.parse_native(NB101_8), {})]
        + [("nb201", NB201.parse_native(t), {}) for t, _ in NB201_PUBLISHED]
        + [("nb201", NB201.parse_native(ALL_NONE), {})]
        + [("enas", a, {}) for a in ENAS.sample(2, 0) + ENAS.sample(1, 1, layers=12) + ENAS.sample(1, 2, layers=14)]
    )


@pytest.mark.parametrize("space,arch,options", _cells())
def test_structure_count_equals_built_module(space: str, arch: Arch, options: dict) -> None:
    c = counts(arch, space)
    assert params_of(arch, space) == c.params
    with torch.device("meta"):
        rows = layer_summary(build(arch, space))
    assert sum(r.params for r in rows) == c.params
    assert sum(r.macs for r in rows) == c.macs
    assert rows[-1].out_shape == (10,)


@pytest.mark.parametrize(
    "space,arch,options",
    [
        ("nb101", NB101.parse_native(NB101_8), {"stem_channels": 8}),
        ("nb201", NB201.parse_native(NB201_PUBLISHED[1][0]), {"channels": 4, "n": 1}),
        ("nb201", NB201.parse_native(ALL_NONE), {"channels": 4, "n": 1}),
        ("enas", ENAS.sample(1, 3)[0], {"out_filters": 4}),
        ("enas", ENAS.sample(1, 4, layers=12)[0], {"out_filters": 4}),
    ],
)
def test_forward_gives_logits_per_image(space: str, arch: Arch, options: dict) -> None:
    torch.manual_seed(0)
    model = build(arch, space, num_classes=7, **options)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()


def test_nb101_widths_inside_a_stack() -> None:
    model = build(NB101.parse_native(NB101_8), "nb101", stem_channels=8)
    feats = model.layers(model.stem(torch.randn(1, 3, 16, 16)))
    assert feats.shape == (1, 32, 4, 4)  # 8 -> 16 -> 32 channels, 16 -> 8 -> 4 pixels
    assert count_params(model) == counts(NB101.parse_native(NB101_8), "nb101", stem_channels=8).params


def test_space_is_inferred_or_must_be_named() -> None:
    assert infer_space(NB201.parse_native(ALL_NONE)) == "nb201"
    assert infer_space(NB101.parse_native(NB101_8)) == "nb101"
    assert infer_space(ENAS.sample(1, 0, layers=14)[0]) == "enas"
    with pytest.raises(ArchError, match="no network builder"):
        build(NB201.parse_native(ALL_NONE), "nope")
    with pytest.raises(ArchError, match="not a NAS-Bench-101 operation"):
        build(NB201.parse_native(NB201_PUBLISHED[0][0]), "nb101")  # avg_pool_3x3 is no NB101 type
