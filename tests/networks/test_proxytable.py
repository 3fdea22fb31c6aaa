"""Proxy tables: values independent of batch, order and worker; settings keys; what --proxies accepts."""

from __future__ import annotations

import numpy as np
import pytest

from svge_cli.errors import SvgeError
from svge_cli.networks import proxytable
from svge_cli.networks.proxytable import (
    DEFAULT_PROXIES,
    ProxySettings,
    compute_table,
    parse_proxies,
    settings_for,
)
from svge_cli.spaces import get_space
from svge_cli.spaces.custom import from_spec

NB201 = get_space("nb201")
CHEAP = ProxySettings(batch_size=4, resolution=8, network=(("channels", 4), ("n", 1)))
NAMES = ("synflow", "naswot", "params")


def test_a_cells_values_do_not_depend_on_its_batch_order_or_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = NB201.sample(6, seed=1)
    together = compute_table("nb201", cells, NAMES, CHEAP)
    alone = np.concatenate([compute_table("nb201", [c], NAMES, CHEAP) for c in cells])
    backwards = compute_table("nb201", cells[::-1], NAMES, CHEAP)[::-1]
    assert not np.isnan(together).any()  # -inf is a value (a network whose output ignores its input)
    assert np.array_equal(together, alone) and np.array_equal(together, backwards)
    monkeypatch.setattr(proxytable, "CHUNK", 2)
    monkeypatch.setattr(proxytable, "MIN_PARALLEL_CELLS", 0)
    done: list[int] = []
    in_workers = compute_table("nb201", cells, NAMES, CHEAP, workers=2, progress=done.append)
    assert np.array_equal(together, in_workers) and done == [2, 2, 2]


def test_settings_keys_name_only_what_a_proxy_depends_on() -> None:
    wider = ProxySettings(batch_size=8, resolution=8, network=(("channels", 8), ("n", 1)))
    assert CHEAP.key("params") == wider.key("params") == "params:structure"
    assert CHEAP.key("synflow") != wider.key("synflow")
    more_images = ProxySettings(batch_size=16, resolution=8, network=CHEAP.network)
    assert CHEAP.key("synflow") == more_images.key("synflow")  # data-free: the batch does not matter
    assert CHEAP.key("naswot") != more_images.key("naswot")
    assert ProxySettings.from_dict(CHEAP.to_dict()) == CHEAP


def test_what_proxies_accepts() -> None:
    assert parse_proxies("none", NB201) == ()
    assert parse_proxies(None, NB201) == parse_proxies("default", NB201) == DEFAULT_PROXIES["nb201"]
    assert parse_proxies("synflow, params,synflow", NB201) == ("synflow", "params")
    with pytest.raises(SvgeError, match="unknown proxy 'fisher'"):
        parse_proxies("synflow,fisher", NB201)
    toy = from_spec({"name": "toy", "ops": ["conv", "pool"], "max_nodes": 4, "max_edges": 5}, "test")
    with pytest.raises(SvgeError, match="no network builder"):
        parse_proxies("synflow", toy)
    assert parse_proxies(None, toy) == ()  # the default where no network can be built: none


def test_the_default_sets_meet_their_cost_settings() -> None:
    for space in DEFAULT_PROXIES:
        assert settings_for(get_space(space)).resolution <= 16  # the measured cheap settings, docs/networks.md
