"""Pool search on NB201 with proxy features: queries to the space's best validation cell, against latents alone.

    python benchmarks/pool_proxies.py --proxy-cache FILE [--seeds 20] [--budget 300]
                                      [--variants latent,latent+proxies] [--shared-data DIR] [--json]

The pool is the whole NB201 enumeration (15,625 cells), the objective the table's
``cifar10_valid_val``; each variant runs svge's default pool search (`PoolBO` with
`DEFAULT_POOL`, batch 5) on its own feature matrix and reports, per seed, the queries
until the best validation cell (91.607) was found (the budget + 1 when it was not),
and the median over seeds.  Variants: ``latent`` (today's `svge bo --strategy pool`:
z-scored latent means of the shipped checkpoint), ``latent+proxies``
(`model.features.pool_features`: latent means and svge's default NB201 proxies,
z-scored, the proxy block scaled to weigh as much as the latent block),
``latent+proxies-unbalanced`` (the same, every column z-scored alike),
``latent+proxy-prior`` (the GP on the latent means, its prior mean a ridge regression on the
z-scored proxies refitted each round: `search.surrogates.PriorMeanGP`), ``proxies``
(the proxy columns alone).  The proxies come from the cache
(`benchmarks/proxies.py --cells 0 --svge-defaults --cache FILE`); a cell missing
from it is computed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_data import NB201_FILE, add_shared_data_option  # noqa: E402

from svge_cli.model.features import FeatureSpec, ProxySource, pool_features  # noqa: E402
from svge_cli.networks.proxytable import DEFAULT_PROXIES, settings_for  # noqa: E402
from svge_cli.search.pool import pool_latents, zscore  # noqa: E402
from svge_cli.search.pool_bo import DEFAULT_POOL, PoolBO, pool_surrogate  # noqa: E402
from svge_cli.search.strategies import DEFAULT_BATCH, search  # noqa: E402
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.importers import import_file  # noqa: E402
from svge_cli.storage.proxycache import ProxyCache  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR, Workspace  # noqa: E402

VARIANTS = ("latent", "latent+proxies", "latent+proxies-unbalanced", "latent+proxy-prior", "proxies")


def queries_to_best(features: np.ndarray, prior_columns: int, val: np.ndarray, budget: int, seed: int) -> int:
    best = float(val.max())
    strategy = PoolBO(features, **(DEFAULT_POOL | pool_surrogate(prior_columns, seed)), seed=seed)
    history = search(strategy, lambda cells: [float(val[i]) for i in cells], budget, DEFAULT_BATCH, seed)
    cells, _ = history.scored()
    hits = [n for n, c in enumerate(cells, start=1) if val[c] >= best]
    return hits[0] if hits else budget + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_data_option(parser)
    parser.add_argument("--proxy-cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--variants", default="latent,latent+proxies")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sp = get_space("nb201")
    table = import_file("nb201", args.shared_data / NB201_FILE)
    ds = sp.enumerate_dataset()
    row = {h: i for i, h in enumerate(table.hashes)}
    val = table.labels["cifar10_valid_val"][np.asarray([row[h] for h in ds.hashes])]
    ck = store.load_checkpoint(PRETRAINED_DIR / "nb201.h5", "nb201")
    with tempfile.TemporaryDirectory() as tmp:
        lat, _ = pool_latents(Workspace(Path(tmp)), ck, ds)
    spec = FeatureSpec(DEFAULT_PROXIES["nb201"], settings_for(sp))
    source = ProxySource(sp, spec, cache=ProxyCache(args.proxy_cache, "nb201"), workers=1)
    archs = list(ds.archs())
    balanced = pool_features(lat.mu, archs, source)
    unbalanced = pool_features(lat.mu, archs, source, balance=False)
    proxy_columns = unbalanced.shape[1] - lat.mu.shape[1]
    features = {  # name: (matrix, trailing columns read by the prior mean)
        "latent": (zscore(lat.mu), 0),
        "latent+proxies": (balanced, 0),
        "latent+proxies-unbalanced": (unbalanced, 0),
        "latent+proxy-prior": (unbalanced, proxy_columns),
        "proxies": (balanced[:, lat.mu.shape[1] :], 0),
    }
    report = {"seeds": args.seeds, "budget": args.budget, "proxies": list(spec.proxies), "variants": {}}
    for name in [v for v in args.variants.split(",") if v]:
        runs = [queries_to_best(*features[name], val, args.budget, seed) for seed in range(args.seeds)]
        report["variants"][name] = {"queries": runs, "median": float(np.median(runs))}
        print(f"{name}: median {np.median(runs):.0f} queries to the best cell; per seed {runs}", flush=True)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
