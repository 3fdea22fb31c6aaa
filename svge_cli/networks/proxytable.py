"""Every requested proxy of many cells, with the settings that make them cheap, on every core.

A predictor reads proxies as features, so they must be cheap and reproducible:

* ``ProxySettings`` says how a network is scored: images per batch, their
  resolution, the initialisation seed and the builder's options (a narrower or
  shallower network than the benchmark's).  Its `key(proxy)` names only what
  that proxy depends on, so a cache can tell two settings apart (``params`` and
  ``flops`` are counted from the benchmark's own network and depend on nothing).
* Each cell is scored on its own, its network initialised from the seed and fed
  the same seeded batch, so its value does not depend on the other cells, the
  order, or which worker process computed it.
* ``DEFAULT_PROXIES`` / ``DEFAULT_SETTINGS`` per space are the measured choice
  (docs/networks.md: cost per cell and rank correlation of each setting).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.errors import SvgeError
from svge_cli.spaces import SearchSpace

#: cells per task sent to a worker process (big enough to hide the hand-over, small enough for a live ETA)
CHUNK = 16
#: below this many cells a worker pool costs more to start than it saves
MIN_PARALLEL_CELLS = 64


@dataclass(frozen=True)
class ProxySettings:
    """How the network proxies score a cell (counted proxies ignore all of it)."""

    batch_size: int = 64
    resolution: int = 32
    seed: int = 0
    network: tuple[tuple[str, int], ...] = field(default_factory=tuple)  # builder options, sorted by name

    def key(self, proxy: str) -> str:
        """What the value of `proxy` depends on, as one string (the cache keys on it)."""
        from svge_cli.networks.proxies import COUNTED, PROXY_TABLE

        if PROXY_TABLE[proxy].reads == COUNTED:
            return f"{proxy}:structure"
        net = ",".join(f"{k}={v}" for k, v in self.network) or "benchmark"
        data = "" if proxy == "synflow" else f";batch={self.batch_size}"
        return f"{proxy}:res={self.resolution};seed={self.seed};net={net}{data}"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "resolution": self.resolution,
            "seed": self.seed,
            "network": dict(self.network),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProxySettings":
        net = tuple(sorted((str(k), int(v)) for k, v in dict(data.get("network", {})).items()))
        return cls(int(data["batch_size"]), int(data["resolution"]), int(data["seed"]), net)


#: the measured defaults: the proxies a predictor reads and how they are scored (docs/networks.md)
#: (ENAS: not measured, so none by default; its one-hot GP is already strong)
DEFAULT_PROXIES: dict[str, tuple[str, ...]] = {
    "nb201": ("synflow", "naswot", "params", "flops"),
    "nb101": ("synflow", "naswot", "params", "flops"),
}
DEFAULT_SETTINGS: dict[str, ProxySettings] = {
    "nb201": ProxySettings(batch_size=16, resolution=16, network=(("channels", 8), ("n", 1))),
    "nb101": ProxySettings(batch_size=16, resolution=16, network=(("stem_channels", 16),)),
}


def has_networks(space: SearchSpace) -> bool:
    from svge_cli.networks import BUILDERS

    return space.name in BUILDERS


def parse_proxies(text: str | None, space: SearchSpace) -> tuple[str, ...]:
    """`--proxies` as a tuple: "none" for none, None / "default" for the space's default, else names."""
    from svge_cli.networks.proxies import check_proxy

    if text is not None and text.strip().lower() == "none":
        return ()
    if text is None or text.strip().lower() == "default":
        return DEFAULT_PROXIES.get(space.name, ()) if has_networks(space) else ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        check_proxy(name)
    if not names:
        raise SvgeError("--proxies wants comma-separated proxy names, 'default' or 'none'")
    if not has_networks(space):
        raise SvgeError(f"space {space.name} has no network builder, so it has no proxies: pass --proxies none")
    return names


def settings_for(space: SearchSpace) -> ProxySettings:
    return DEFAULT_SETTINGS.get(space.name, ProxySettings())


def _score_chunk(
    space: str, archs: Sequence[Arch], proxies: Sequence[str], settings: ProxySettings, device: str = "cpu"
) -> np.ndarray:
    """Every proxy of every cell of a chunk; NaN where the cell's network cannot be built."""
    import torch

    from svge_cli.networks.proxies import random_batch, score_cell

    torch.set_num_threads(1)
    batch = random_batch(settings.batch_size, settings.seed, shape=settings.shape)
    out = np.full((len(archs), len(proxies)), np.nan)
    for i, arch in enumerate(archs):
        for j, proxy in enumerate(proxies):
            try:
                out[i, j] = score_cell(
                    arch,
                    space,
                    proxy,
                    settings.seed,
                    batch,
                    device,
                    shape=settings.shape,
                    network=dict(settings.network),
                )
            except ArchError:
                break
    return out


def default_workers() -> int:
    """One worker per CPU thread the process was given (`svge --threads`), at most one per usable core."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores))


def compute_table(
    space: str,
    archs: Sequence[Arch],
    proxies: Sequence[str],
    settings: ProxySettings,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """(cells, proxies) scores, chunk by chunk in `workers` processes (one on a GPU `device`);
    `progress(cells done)` after each chunk.

    Args:
        space: the cells' search space, by name.
        archs: the cells to score, in order.
        proxies: registered proxy names, one column each.
        settings: how the network proxies build and feed each network (batch, resolution, seed,
            builder options).
        workers: processes that score chunks of CHUNK cells; 1 or fewer, fewer than MIN_PARALLEL_CELLS
            cells, or a device other than "cpu" scores everything in this process.
        progress: called with the number of cells in each chunk as it finishes; None reports nothing.
        device: where the networks are scored ("cpu" or a GPU such as "cuda").

    Returns:
        float64 scores of shape (len(archs), len(proxies)); a cell's row is NaN from the first proxy
        whose network could not be built (ArchError) onward.
    """
    chunks = [list(archs[s : s + CHUNK]) for s in range(0, len(archs), CHUNK)]
    parts: list[np.ndarray] = []
    if workers <= 1 or len(archs) < MIN_PARALLEL_CELLS or device != "cpu":
        for chunk in chunks:
            parts.append(_score_chunk(space, chunk, proxies, settings, device))
            if progress is not None:
                progress(len(chunk))
    else:
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_score_chunk, space, chunk, tuple(proxies), settings) for chunk in chunks]
            for chunk, fut in zip(chunks, futures):
                parts.append(fut.result())
                if progress is not None:
                    progress(len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, len(proxies)))
