"""The pictures of Fig. 3: the latent space in two principal components, and predicted vs true scores.

Figures are built as bare matplotlib Figures (no pyplot, no display, no global
backend state: PNG goes through Agg, SVG through the SVG writer) and written atomically;
the file name's extension (.png or .svg) picks the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from svge_cli.atomic import atomic_path
from svge_cli.errors import SvgeError

FORMATS = {".png": "png", ".svg": "svg"}
DPI = 150


def figure_format(path: str | Path) -> str:
    """The image format a path asks for; SvgeError for anything but .png and .svg."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise SvgeError(f"{path}: a picture must end in {' or '.join(FORMATS)}")
    return fmt


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write `fig` atomically in the format its extension names (white background)."""
    fmt = figure_format(path)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", facecolor="white")


def principal_components(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the rows of `x` on its first k principal axes, and each axis's share of the variance.

    Axes beyond the data's rank come out as zero columns, so two points still plot.
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((len(x), k))
    used = min(k, vt.shape[0])
    coords[:, :used] = centred @ vt[:used].T
    total = float((s**2).sum())
    share = np.zeros(k)
    share[:used] = (s[:used] ** 2) / total if total > 0 else 0.0
    return coords, share


def latent_pca(
    path: str | Path,
    mu: np.ndarray,
    scores: np.ndarray | None = None,
    score_label: str = "score",
    title: str = "latent space",
) -> None:
    """Fig. 3 (left): latent points in their first two principal components, coloured by score.

    Args:
        path: the picture file to write, ending in .png or .svg.
        mu: the latent means to plot, of shape (N, D) with N >= 2.
        scores: one score per row of `mu` for the colour scale; None draws every point grey.
        score_label: the colour bar's label.
        title: the plot's title, to which the number of cells is added.
    """
    figure_format(path)
    if len(mu) < 2:
        raise SvgeError("a latent-space picture needs at least two cells")
    coords, share = principal_components(mu)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    style: dict[str, Any] = {"s": 8, "linewidths": 0}
    if scores is None:
        ax.scatter(coords[:, 0], coords[:, 1], color="tab:gray", **style)
    else:
        order = np.argsort(scores)  # the best cells drawn last, on top
        points = ax.scatter(coords[order, 0], coords[order, 1], c=np.asarray(scores)[order], cmap="viridis", **style)
        fig.colorbar(points, ax=ax, label=score_label)
    ax.set_xlabel(f"PC 1 ({100 * share[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * share[1]:.1f}% of variance)")
    ax.set_title(f"{title} ({len(mu):,} cells)")
    save_figure(fig, path)


def prediction_scatter(
    path: str | Path,
    truth: np.ndarray,
    pred: np.ndarray,
    label: str = "score",
    metrics: dict[str, Any] | None = None,
    top_k: int | None = None,
    spread: np.ndarray | None = None,
) -> None:
    """Fig. 3 (right): predicted against true scores, with the diagonal and the headline metrics.

    With top_k, the region of the k best cells by truth (right of a vertical line) and by
    prediction (above a horizontal line) is shaded, and the cells in both are marked: the
    top-right corner is what a search picks correctly.  With spread (one std per cell),
    error bars are drawn.

    Args:
        path: the picture file to write, ending in .png or .svg.
        truth: the true score of each cell, of shape (N,) with N >= 1.
        pred: the predicted score of each cell, of shape (N,).
        label: the name of the score, used in the axis labels.
        metrics: the headline metrics for the title (mse, spearman and kendall_tau); None or empty: no title.
        top_k: how many best cells to shade and mark; None, or a value outside 1..N - 1, marks none.
        spread: each cell's predictive standard deviation, of shape (N,), drawn as error bars; None: none.
    """
    figure_format(path)
    truth, pred = np.asarray(truth, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if len(truth) == 0:
        raise SvgeError("a prediction picture needs at least one cell with a true score")
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    if spread is not None:
        ax.errorbar(truth, pred, yerr=np.asarray(spread), fmt="none", ecolor="tab:blue", alpha=0.15, linewidth=0.5)
    ax.scatter(truth, pred, s=6, alpha=0.5, linewidths=0, color="tab:blue")
    low = float(min(np.min(truth), np.min(pred)))
    high = float(max(np.max(truth), np.max(pred)))
    ax.plot([low, high], [low, high], color="tab:red", linewidth=1, label="prediction = truth")
    if top_k is not None and 0 < top_k < len(truth):
        t_cut = np.sort(truth)[-top_k]
        p_cut = np.sort(pred)[-top_k]
        ax.axvspan(t_cut, high, color="tab:orange", alpha=0.08, linewidth=0)
        ax.axhspan(p_cut, high, color="tab:orange", alpha=0.08, linewidth=0)
        both = (truth >= t_cut) & (pred >= p_cut)
        top_true = truth >= t_cut
        ax.scatter(
            truth[top_true & ~both],
            pred[top_true & ~both],
            s=14,
            color="tab:orange",
            linewidths=0,
            label=f"top {top_k} by truth, missed",
        )
        ax.scatter(
            truth[both],
            pred[both],
            s=14,
            color="tab:green",
            linewidths=0,
            label=f"top {top_k} by truth and prediction ({int(both.sum())})",
        )
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.legend(loc="upper left", fontsize=8)
    if metrics:
        ax.set_title(
            f"{len(truth):,} cells: MSE {metrics['mse']:.3g}, Spearman {metrics['spearman']:.3f}, "
            f"Kendall {metrics['kendall_tau']:.3f}",
            fontsize=9,
        )
    save_figure(fig, path)
