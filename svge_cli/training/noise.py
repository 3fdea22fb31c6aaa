"""The VAE's posterior noise, drawn per cell from (seed, epoch, cell index).

A generator shared by the batch would hand a cell different noise depending on
which other cells share its batch, and so on how many processes split the
batch.  Here each number is a counter-based hash (splitmix64) of the run's
seed, the epoch, the cell's dataset row and the latent coordinate, turned into
a normal draw by Box-Muller: a cell's noise is the same whichever process
trains it, at whatever world size, and a resumed run draws what the
uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1, _MUL2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_TWO32 = float(2**32)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: consecutive counters give independent-looking 64-bit words."""
    x = (x ^ (x >> np.uint64(30))) * _MUL1
    x = (x ^ (x >> np.uint64(27))) * _MUL2
    return x ^ (x >> np.uint64(31))


def cell_noise(seed: int, epoch: int, cells: np.ndarray, dim: int) -> np.ndarray:
    """Standard normal noise of shape (len(cells), dim), float32, a pure function of its arguments.

    Args:
        seed: the run's seed.
        epoch: the 0-based epoch the noise is for.
        cells: the dataset rows of the cells, one noise row each; a row gets the same noise in any batch.
        dim: the number of latent coordinates per cell.

    Returns:
        The noise, (len(cells), dim), float32.
    """
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed % 2**64], np.uint64) * _GOLDEN + _mix(np.array([epoch % 2**64], np.uint64)))
        counter = np.asarray(cells, np.uint64)[:, None] * np.uint64(dim) + np.arange(dim, dtype=np.uint64)
        bits = _mix(key + counter * _GOLDEN)
    u1 = ((bits >> np.uint64(32)).astype(np.float64) + 0.5) / _TWO32  # in (0, 1): the log is finite
    u2 = (bits & np.uint64(0xFFFFFFFF)).astype(np.float64) / _TWO32
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)
