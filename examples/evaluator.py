#!/usr/bin/env python3
"""A tiny evaluator for `svge bo --evaluator`: scores each cell by a simple formula.

Protocol: svge starts the program once per cell and writes the cell as one JSON line on stdin, e.g.
  {"space": "nb201", "ops": ["input", "nor_conv_3x3", ...], "adj": [[0, 1, ...], ...], "native": "|nor_conv_3x3~0|+..."}
and reads one answer on stdout (higher is better): a number, or a JSON object
{"score": ..., "cost": ...} whose other fields go to the search's journal.
A real evaluator would train the network, or look it up in a benchmark.

This one rewards convolutions, 3x3 ones most: the share of operation nodes whose
name contains "conv", plus half the share whose name contains "3x3".  It needs
nothing beyond Python's standard library.

  svge bo --space nb201 --evaluator 'python examples/evaluator.py' --iters 3 --batch 10
"""

import json
import sys


def score(cell: dict) -> float:
    inner = [op for op in cell["ops"] if op not in ("input", "output")]
    if not inner:
        return 0.0
    conv = sum("conv" in op for op in inner) / len(inner)
    three = sum("3x3" in op for op in inner) / len(inner)
    return conv + 0.5 * three


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            print(f"{score(json.loads(line)):.6f}", flush=True)  # flush: each answer counts even if we are stopped


if __name__ == "__main__":
    main()
