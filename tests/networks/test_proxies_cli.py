"""Zero-cost proxies on tiny networks, and the `svge net` / `svge score` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import Runner, assert_one_line_error

from svge_cli.networks import build
from svge_cli.networks.counting import counts
from svge_cli.networks.proxies import (
    PROXIES,
    grad_norm,
    jacob_cov,
    naswot,
    proxy_scores,
    snip,
    synflow,
)
from svge_cli.spaces import get_space

NB201 = get_space("nb201")
GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
WEAK = "|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|avg_pool_3x3~2|"
CUT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"  # output never sees the input
NB101_8 = (
    "ops=conv3x3,conv3x3,maxpool,conv1x1,conv3x3,conv1x1;adj=01100000/00010000/00011000/00000100/"
    "00000010/00000001/00000001/00000000"
)


def tiny(text: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(NB201.parse_native(text), "nb201", channels=4, n=1)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 10, (6,), generator=gen)


@pytest.mark.parametrize("proxy", [grad_norm, snip, jacob_cov, naswot])
def test_data_proxies_give_finite_scores_on_a_tiny_network(proxy) -> None:
    x, y = batch()
    assert math.isfinite(proxy(tiny(GOOD), x, y))


def test_jacob_cov_ranks_a_network_that_ignores_its_input_last() -> None:
    x, y = batch()
    assert jacob_cov(tiny(CUT), x, y) == float("-inf")


def test_synflow_activation_form_equals_the_weight_form() -> None:
    shape = (3, 8, 8)
    reference = tiny(GOOD).double().eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.abs_()
    reference(torch.ones((1, *shape), dtype=torch.float64)).sum().backward()
    expected = sum(
        float((m.weight * m.weight.grad).sum().detach())
        for m in reference.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.grad is not None
    )
    assert synflow(tiny(GOOD), shape) == pytest.approx(expected, rel=1e-12)
    assert synflow(tiny(CUT), shape) == 0.0
    assert synflow(tiny(GOOD), shape) > synflow(tiny(WEAK), shape) > 0


def test_proxy_scores_are_seeded_and_order_free() -> None:
    cells = [NB201.parse_native(t) for t in (GOOD, WEAK)]
    a = proxy_scores("nb201", cells, "synflow", seed=3)
    b = proxy_scores("nb201", cells[::-1], "synflow", seed=3)
    assert np.array_equal(a, b[::-1]) and a[0] > a[1]
    assert proxy_scores("nb201", cells, "params").tolist() == [counts(c, "nb201").params for c in cells]
    assert proxy_scores("nb201", cells, "flops").tolist() == [counts(c, "nb201").macs for c in cells]


def test_an_extrapolated_8_node_nb101_cell_builds_and_scores() -> None:
    cell = get_space("nb101").parse_native(NB101_8)
    assert cell.n_nodes == 8
    [score] = proxy_scores("nb101", [cell], "synflow")
    assert math.isfinite(score) and score > 0


def test_every_proxy_is_known_to_the_command(svge: Runner) -> None:
    for proxy in PROXIES:
        assert proxy in svge("score", "--help").out


def test_net_prints_params_and_a_json_object_per_cell(svge: Runner) -> None:
    r = svge("net", "-", stdin=GOOD + "\n")
    assert r.code == 0, r.stderr
    params, macs, cell = r.out.strip().split("\t")
    assert int(params) == 802_426 and cell == GOOD and int(macs) > 0
    r = svge("net", "-", "--json", stdin=GOOD + "\n" + WEAK + "\n")
    rows = [json.loads(line) for line in r.lines]
    assert [row["params"] for row in rows] == [802_426, counts(NB201.parse_native(WEAK), "nb201").params]
    one = json.loads(svge("net", "-", "--json", stdin=NB101_8 + "\n").out)
    assert one["params"] == sum(layer["params"] for layer in one["layers"])


def test_score_prints_one_score_per_line(svge: Runner) -> None:
    r = svge("score", "-", "--proxy", "synflow", stdin=f"{GOOD}\n# a comment\n{WEAK}\n")
    assert r.code == 0, r.stderr
    first, second = map(float, r.lines)
    assert first > second > 0
    r = svge("score", "-", "--proxy", "params", "--json", stdin=GOOD + "\n")
    assert json.loads(r.out)["scores"] == [802_426]


def test_bad_input_is_one_line(svge: Runner) -> None:
    assert_one_line_error(svge("score", "-", "--proxy", "magic", stdin=GOOD + "\n"), "unknown proxy")
    assert_one_line_error(svge("net", "-", stdin="|bogus~0|\n"), "line 1")
    assert_one_line_error(
        svge("score", "-", "--proxy", "snip", "--data", "no-such-dir", stdin=GOOD + "\n"), "no such folder"
    )
