"""What a predictor reads about a cell besides its latent mean: zero-cost proxies, from the cache or computed.

Proxy values span many orders of magnitude (synflow, params, flops) or are
-inf for networks whose output ignores the input (jacob_cov, naswot), so a
predictor reads them through a fixed map -- a signed log for the multiplicative
ones, the value itself for the log-determinants -- and a non-finite value
becomes the `fill` the spec learned from the fitted cells: a little below the
lowest finite value, where such (failed) networks belong.  The spec (names,
scoring settings, fills) is stored with the predictor, so `svge predict` reads
exactly what `svge finetune` fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.networks.proxies import PROXY_TABLE
from svge_cli.networks.proxytable import (
    DEFAULT_PROXIES,
    ProxySettings,
    compute_table,
    default_workers,
    has_networks,
    settings_for,
)
from svge_cli.spaces import SearchSpace
from svge_cli.storage.proxycache import ProxyCache, cache_path

#: proxies whose values multiply up (sums of products over layers, counts): read on a log scale
LOG_PROXIES = frozenset(p.name for p in PROXY_TABLE.values() if p.log_scale)


@dataclass(frozen=True)
class FeatureSpec:
    """The proxies a predictor reads, how they are scored, and the value standing in for a non-finite one."""

    proxies: tuple[str, ...] = ()
    settings: ProxySettings = field(default_factory=ProxySettings)
    fill: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"proxies": list(self.proxies), "settings": self.settings.to_dict(), "fill": list(self.fill)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "FeatureSpec":
        if not data or not data.get("proxies"):
            return cls()
        return cls(
            tuple(str(p) for p in data["proxies"]),
            ProxySettings.from_dict(data["settings"]),
            tuple(float(v) for v in data["fill"]),
        )

    def fitted(self, transformed: np.ndarray) -> "FeatureSpec":
        """This spec with fills learned from `transformed` rows: lowest finite value less one std, per proxy."""
        fills = []
        for col in np.asarray(transformed, dtype=np.float64).T:
            ok = col[np.isfinite(col)]
            fills.append(float(ok.min() - max(ok.std(), 1.0)) if ok.size else 0.0)
        return FeatureSpec(self.proxies, self.settings, tuple(fills))

    def columns(self, raw: np.ndarray) -> np.ndarray:
        """Raw proxy values (cells, proxies) -> the predictor's columns (fills where non-finite)."""
        out = transform(raw, self.proxies)
        fill = np.asarray(self.fill if self.fill else [0.0] * len(self.proxies))
        return np.where(np.isfinite(out), out, fill[None, :])

    def describe(self) -> str:
        return ", ".join(self.proxies) if self.proxies else "no proxies"


def transform(raw: np.ndarray, proxies: Sequence[str]) -> np.ndarray:
    """The fixed per-proxy map (signed log for LOG_PROXIES); non-finite values stay non-finite."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(proxies))
    out = raw.copy()
    for j, name in enumerate(proxies):
        if name in LOG_PROXIES:
            with np.errstate(invalid="ignore"):
                out[:, j] = np.sign(raw[:, j]) * np.log1p(np.abs(raw[:, j]))
    return out


class ProxySource:
    """Raw proxy values of cells: from the workspace cache where known, computed once (and cached) otherwise."""

    def __init__(
        self,
        space: SearchSpace,
        spec: FeatureSpec,
        ui: Ui | None = None,
        workers: int | None = None,
        cache: ProxyCache | None = None,
    ) -> None:
        """Cached in `cache`, else in `ui`'s workspace, else in memory only.

        Args:
            space: the space whose cells' networks are built and scored.
            spec: which proxies, under which settings (images, resolution), make up a row.
            ui: the console and workspace; None computes without a progress bar or a workspace cache.
            workers: processes that compute missing proxies; None takes the default (every core).
            cache: where values are looked up and stored; None picks `ui`'s workspace file.
        """
        self.space, self.spec, self.ui = space, spec, ui
        self.workers = default_workers() if workers is None else workers
        if cache is None:
            cache = ProxyCache(cache_path(ui.workspace, space.name) if ui is not None else None, space.name)
        self.cache = cache
        self.computed = 0  # cells whose proxies this source computed (the rest came from the cache)

    def raw(self, archs: Sequence[Arch]) -> np.ndarray:
        """(cells, proxies) raw values; NaN rows for cells that are no computation graph of the space
        (a decode gone wrong): they have no network to score, and read as the fills."""
        valid = np.asarray([self.space.dag_error(a) is None for a in archs], dtype=bool)
        hashes = [self.space.hash(a) if ok else "" for a, ok in zip(archs, valid)]
        keys = [self.spec.settings.key(p) for p in self.spec.proxies]
        table = np.full((len(archs), len(keys)), np.nan)
        missing = np.zeros(len(archs), dtype=bool)
        for j, key in enumerate(keys):
            table[:, j], found = self.cache.lookup(key, hashes)
            missing |= ~found
        todo = np.flatnonzero(missing & valid)
        if len(todo):
            table[todo] = self._compute([archs[i] for i in todo])
            for j, key in enumerate(keys):
                self.cache.add(key, [hashes[i] for i in todo], table[todo, j])
            self.cache.save()
            self.computed += len(todo)
        return table

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        if self.ui is None:
            return compute_table(self.space.name, archs, self.spec.proxies, self.spec.settings, self.workers)
        self.ui.note(
            f"computing {self.spec.describe()} for {len(archs):,} {self.space.name} cells not in the proxy cache "
            f"({self.workers} worker{'s' if self.workers != 1 else ''})"
        )
        with self.ui.progress("proxies", total=len(archs)) as bar:
            return compute_table(
                self.space.name, archs, self.spec.proxies, self.spec.settings, self.workers, lambda n: bar.advance(n)
            )

    def columns(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.spec.columns(self.raw(archs))


def proxy_source(ui: Ui, space: SearchSpace) -> ProxySource:
    """The space's default proxies, scored with its default settings, cached in `ui`'s workspace."""
    if not has_networks(space) or space.name not in DEFAULT_PROXIES:
        raise SvgeError(f"space {space.name} has no default zero-cost proxies (no network builder measured for it)")
    return ProxySource(space, FeatureSpec(DEFAULT_PROXIES[space.name], settings_for(space)), ui)


def pool_features(
    mu: np.ndarray,
    archs: Sequence[Arch],
    source: ProxySource,
    onehot: np.ndarray | None = None,
    balance: bool = True,
) -> np.ndarray:
    """A search pool's feature matrix: latent means, proxy columns (fills learned on the pool) and,
    if given, one-hot cells, each column z-scored over the pool (constant columns become 0).

    With `balance` the proxy block is scaled so that it weighs as much in a Euclidean distance as the
    latent block (a few proxies beside 56 latent dimensions would otherwise barely move an isotropic
    kernel).  The proxies come from `source` (its cache: each cell is computed once, ever).

    Args:
        mu: posterior means of the pool's cells, (N, latent).
        archs: the pool's cells, aligned with the rows of `mu`.
        source: scores the proxy columns of the cells (and caches them).
        onehot: the cells as `one_hot_cells` vectors, (N, F), or None to leave that block out.
        balance: scale the proxy block to the latent block's weight in Euclidean distance.

    Returns:
        The (N, features) float64 matrix: latent, proxy and (if given) one-hot blocks, in that order.
    """
    raw = source.raw(archs)
    spec = source.spec.fitted(transform(raw, source.spec.proxies))
    blocks = [_zscored(mu), _zscored(spec.columns(raw))]
    if balance and blocks[1].shape[1]:
        blocks[1] = blocks[1] * np.sqrt(blocks[0].shape[1] / blocks[1].shape[1])
    if onehot is not None:
        blocks.append(_zscored(onehot))
    return np.concatenate(blocks, axis=1)


def _zscored(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    std = f.std(0)
    return (f - f.mean(0)) / np.where(std > 0, std, 1.0)
