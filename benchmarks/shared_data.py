"""Where the benchmark scripts find `../shared/data` and its files: one definition for all of them.

The data is never part of the repository; `--shared-data DIR` or `$SVGE_SHARED_DATA` points elsewhere.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENAS_FILE = "enas/final_structures6.txt"
NB201_FILE = "nb201/nb201_cifar10.csv"
NB101_FILE = "nb101/nb101_1k.jsonl"


def add_shared_data_option(
    parser: argparse.ArgumentParser,
    help: str = "folder with enas/, nb201/, nb101/ (default ../shared/data or $SVGE_SHARED_DATA)",
) -> None:
    """The --shared-data option every benchmark takes, defaulting to $SVGE_SHARED_DATA or ../shared/data."""
    parser.add_argument(
        "--shared-data", type=Path, default=Path(os.environ.get("SVGE_SHARED_DATA", DEFAULT_DIR)), help=help
    )
