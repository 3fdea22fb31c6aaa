"""Why prior samples of an NB101 checkpoint are invalid: the rule each decoded cell breaks.

Draws points from the prior scaled to the training latents (the validity protocol of
`svge evaluate`), decodes each once with sampling, and counts the reasons
`NB101Space.validate` gives (a cell of the space) and those `NB101Space.dag_error` gives
(the paper's valid DAG).  One thread; prints two lines per prior scale.

    python benchmarks/nb101_validity.py --points 300
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svge_cli.model import (
    checkpoints,  # noqa: E402
    codec,  # noqa: E402
)
from svge_cli.spaces import get_space  # noqa: E402
from svge_cli.storage import store  # noqa: E402
from svge_cli.storage.workspace import PRETRAINED_DIR  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(PRETRAINED_DIR / "nb101.h5"))
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--scales", default="1.0,0.5", help="spread of the prior relative to the training latents")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sp = get_space("nb101")
    ck = store.load_checkpoint(args.checkpoint, "nb101")
    model = checkpoints.model_from_checkpoint(ck)
    mean, std = ck.arrays["latent_mean"], ck.arrays["latent_std"]
    rng = np.random.default_rng(args.seed)
    for scale in (float(s) for s in args.scales.split(",")):
        z = (rng.standard_normal((args.points, len(mean))) * std * scale + mean).astype(np.float32)
        gen = torch.Generator().manual_seed(args.seed)
        in_space: collections.Counter[str] = collections.Counter()
        as_dag: collections.Counter[str] = collections.Counter()
        for arch in codec.decode_once(model, z, greedy=False, max_nodes=None, generator=gen):
            verdict = codec.judge(sp, arch)
            in_space["valid" if verdict.valid else verdict.reason.split(",")[0]] += 1
            as_dag[sp.dag_error(arch) or "valid"] += 1
        for name, reasons in (("NB101 cell", in_space), ("valid DAG (paper)", as_dag)):
            print(f"prior scale {scale}, {name}: " + "; ".join(f"{n} {why}" for why, n in reasons.most_common()))


if __name__ == "__main__":
    main()
