"""How well predicted scores agree with the truth: errors, rank correlations, top-k overlap, calibration.

Written out here (numpy only) so that their tie handling is explicit: ranks of
tied values are averaged (Spearman), Kendall's tau is tau-b.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _pair(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth, dtype=np.float64).ravel(), np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length ({t.size} vs {p.size})")
    if t.size == 0:
        raise ValueError("no values to compare")
    return t, p


def mse(truth: np.ndarray, pred: np.ndarray) -> float:
    t, p = _pair(truth, pred)
    return float(np.mean((t - p) ** 2))


def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(mse(truth, pred)))


def pearson(truth: np.ndarray, pred: np.ndarray) -> float:
    """Linear correlation; NaN when either side is constant (it is undefined there)."""
    t, p = _pair(truth, pred)
    dt, dp = t - t.mean(), p - p.mean()
    denom = np.sqrt((dt**2).sum() * (dp**2).sum())
    return float((dt * dp).sum() / denom) if denom > 0 else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], v.size] - 1
    ranks = np.empty(v.size)
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def spearman(truth: np.ndarray, pred: np.ndarray) -> float:
    t, p = _pair(truth, pred)
    return pearson(average_ranks(t), average_ranks(p))


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Pairs of equal values in a sorted array (sum of t(t-1)/2 over runs)."""
    if sorted_values.size == 0:
        return 0
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1], True])
    runs = np.diff(starts)
    return int((runs * (runs - 1) // 2).sum())


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (ties are not inversions): bottom-up merge sort in numpy.

    Each level merges neighbouring sorted blocks of `width`; keys offset by the
    block pair's number keep every pair apart, so one searchsorted per level
    counts, for each right-block element, the larger elements of its left block.
    """
    v = np.unique(values, return_inverse=True)[1].astype(np.int64)
    n, span, total, width = v.size, int(v.max(initial=0)) + 1, 0, 1
    pos = np.arange(n)
    while width < n:
        pair = pos // (2 * width)
        right = (pos // width) % 2 == 1
        key = pair * span + v
        left_keys = key[~right]
        block_end = np.searchsorted(left_keys, (pair[right] + 1) * span, side="left")
        total += int((block_end - np.searchsorted(left_keys, key[right], side="right")).sum())
        v = np.sort(key) - pair * span
        width *= 2
    return total


def kendall_tau(truth: np.ndarray, pred: np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking handled), in O(n log^2 n) (Knight's method)."""
    t, p = _pair(truth, pred)
    order = np.lexsort((p, t))
    t, p = t[order], p[order]
    n0 = t.size * (t.size - 1) // 2
    ties_t = _tied_pairs(t)
    joint_starts = np.r_[True, (t[1:] != t[:-1]) | (p[1:] != p[:-1])]
    runs = np.diff(np.r_[np.flatnonzero(joint_starts), t.size])
    ties_both = int((runs * (runs - 1) // 2).sum())
    ties_p = _tied_pairs(np.sort(p))
    swaps = _inversions(p)
    denom = np.sqrt(float(n0 - ties_t) * float(n0 - ties_p))
    if denom == 0:
        return float("nan")
    return float((n0 - ties_t - ties_p + ties_both - 2 * swaps) / denom)


def top_k_overlap(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Share of the k best cells by truth that are also among the k best by prediction (higher = better).

    Ties at the k-th place are broken by input order, on both sides alike.

    Args:
        truth: the measured values, one per cell; not empty.
        pred: the predicted values, aligned with `truth`.
        k: how many of the best cells to compare; at least 1, capped at the number of cells.

    Returns:
        The overlap share, in [0, 1].

    Raises:
        ValueError: when the arrays differ in length, are empty, or k < 1.
    """
    t, p = _pair(truth, pred)
    k = min(int(k), t.size)
    if k < 1:
        raise ValueError("k must be at least 1")
    best_t = np.argsort(-t, kind="mergesort")[:k]
    best_p = np.argsort(-p, kind="mergesort")[:k]
    return len(np.intersect1d(best_t, best_p)) / k


def prediction_metrics(truth: np.ndarray, pred: np.ndarray, top_k: int = 10) -> dict[str, Any]:
    """Every figure `svge predict --truth` reports, by name.

    Args:
        truth: the measured values, one per cell; not empty.
        pred: the predicted values, aligned with `truth`.
        top_k: k of the top-k overlap, capped at the number of cells.

    Returns:
        cells, mse, rmse, pearson, spearman, kendall_tau, top_k (the k used) and top_k_overlap.
    """
    t, p = _pair(truth, pred)
    k = min(int(top_k), t.size)
    return {
        "cells": int(t.size),
        "mse": mse(t, p),
        "rmse": rmse(t, p),
        "pearson": pearson(t, p),
        "spearman": spearman(t, p),
        "kendall_tau": kendall_tau(t, p),
        "top_k": k,
        "top_k_overlap": top_k_overlap(t, p, k),
    }


def uncertainty_metrics(truth: np.ndarray, pred: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """How well a head's standard deviations describe its errors.

    mean_std: the average predicted std; within_1std / within_2std: shares of cells whose
    error lies inside one / two stds (about 0.68 / 0.95 when calibrated and Gaussian);
    error_std_spearman: rank correlation of |error| with std (above 0: the head knows where it errs).

    Args:
        truth: the measured values, one per cell; not empty.
        pred: the head's predicted means, aligned with `truth`.
        std: the head's predicted standard deviations, aligned with `truth`, in the same unit.

    Returns:
        mean_std, within_1std, within_2std and error_std_spearman (NaN for a single cell).
    """
    t, p = _pair(truth, pred)
    s = np.asarray(std, dtype=np.float64).ravel()
    err = np.abs(t - p)
    return {
        "mean_std": float(s.mean()),
        "within_1std": float(np.mean(err <= s)),
        "within_2std": float(np.mean(err <= 2 * s)),
        "error_std_spearman": spearman(err, s) if t.size > 1 else float("nan"),
    }
