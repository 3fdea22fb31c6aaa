"""Every strategy `svge bo` offers: importing this module registers them all (see `registry`).

A new strategy is one module that registers its builder, listed here once.
"""

from __future__ import annotations

from svge_cli.search import evolution, latent_cells, pool_bo, random_search  # noqa: F401  (they register)
from svge_cli.search.registry import entries

STRATEGIES = tuple(e.name for e in entries())
