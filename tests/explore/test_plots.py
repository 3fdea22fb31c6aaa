"""Pictures: valid PNG and SVG files, chosen by extension, written atomically, PCA done right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from svge_cli.errors import SvgeError
from svge_cli.explore import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)
MU = RNG.normal(size=(50, 8))


def is_svg(path: Path) -> bool:
    text = path.read_text()
    return text.lstrip().startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")


def test_latent_pca_writes_png_and_svg(tmp_path: Path) -> None:
    plots.latent_pca(tmp_path / "pca.png", MU, MU[:, 0], "acc")
    plots.latent_pca(tmp_path / "sub" / "pca.SVG", MU)  # no scores: one colour; folders are created
    assert (tmp_path / "pca.png").read_bytes().startswith(PNG_MAGIC)
    assert is_svg(tmp_path / "sub" / "pca.SVG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pca.png", "sub"]  # no temporary files left


def test_prediction_scatter_writes_png_and_svg(tmp_path: Path) -> None:
    truth = RNG.random(30)
    metrics = {"mse": 0.01, "spearman": 0.9, "kendall_tau": 0.7}
    plots.prediction_scatter(tmp_path / "s.png", truth, truth + 0.05, "val_acc", metrics)
    plots.prediction_scatter(tmp_path / "s.svg", truth, truth)
    assert (tmp_path / "s.png").read_bytes().startswith(PNG_MAGIC)
    assert is_svg(tmp_path / "s.svg")


def test_unknown_extension_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    for bad in ("pca.jpg", "pca"):
        with pytest.raises(SvgeError, match=r"\.png or \.svg"):
            plots.latent_pca(tmp_path / bad, MU)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_picture(tmp_path: Path) -> None:
    target = tmp_path / "pca.png"
    target.write_bytes(b"old")
    with pytest.raises(SvgeError, match="two cells"):
        plots.latent_pca(target, MU[:1])
    assert target.read_bytes() == b"old"


def test_principal_components_of_points_on_a_line() -> None:
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    coords, share = plots.principal_components(np.stack([t, t, np.zeros(5)], axis=1))
    assert share == pytest.approx([1.0, 0.0])
    assert np.abs(coords[:, 0]) == pytest.approx(np.abs(t) * np.sqrt(2))
    assert coords[:, 1] == pytest.approx(np.zeros(5), abs=1e-12)


def test_principal_components_orders_axes_by_variance() -> None:
    x = RNG.normal(size=(400, 3)) * np.array([5.0, 1.0, 0.1])
    coords, share = plots.principal_components(x)
    assert share[0] > share[1] > 0 and share.sum() < 1
    assert coords[:, 0].var() > coords[:, 1].var()
