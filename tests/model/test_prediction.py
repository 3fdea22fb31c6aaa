"""Prediction metrics against hand-computed values, label scaling, and matching cells to their truth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model.metrics import (
    average_ranks,
    kendall_tau,
    mse,
    pearson,
    prediction_metrics,
    rmse,
    spearman,
    top_k_overlap,
)
from svge_cli.model.predictor import label_column, match_truth
from svge_cli.model.scaling import LabelScale

TRUTH = np.array([1.0, 2.0, 3.0, 4.0])
PRED = np.array([1.0, 3.0, 2.0, 4.0])  # the middle two swapped


def test_metrics_on_a_small_example_computed_by_hand() -> None:
    # squared errors 0, 1, 1, 0; deviations (-1.5, -.5, .5, 1.5) vs (-1.5, .5, -.5, 1.5): 4 / 5;
    # one discordant pair of six: (5 - 1) / 6; top-2 by truth {3, 2}, by prediction {3, 1}
    assert mse(TRUTH, PRED) == pytest.approx(0.5)
    assert rmse(TRUTH, PRED) == pytest.approx(math.sqrt(0.5))
    assert pearson(TRUTH, PRED) == pytest.approx(0.8)
    assert spearman(TRUTH, PRED) == pytest.approx(0.8)
    assert kendall_tau(TRUTH, PRED) == pytest.approx(2 / 3)
    assert top_k_overlap(TRUTH, PRED, 2) == pytest.approx(0.5)
    assert top_k_overlap(TRUTH, PRED, 1) == 1.0


def test_ties_share_ranks_and_kendall_is_tau_b() -> None:
    truth, pred = np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 3.0])
    assert average_ranks(np.array([10.0, 20.0, 10.0, 30.0])).tolist() == [1.5, 3.0, 1.5, 4.0]
    # ranks (1.5, 1.5, 3, 4) vs (1, 2.5, 2.5, 4): 3.75 / sqrt(4.5 * 4.5)
    assert spearman(truth, pred) == pytest.approx(3.75 / 4.5)
    # 4 concordant, 0 discordant, one tie on each side: 4 / sqrt((6 - 1) * (6 - 1))
    assert kendall_tau(truth, pred) == pytest.approx(0.8)


def test_perfect_and_reversed_rankings() -> None:
    x = np.arange(7.0)
    assert spearman(x, 2 * x + 1) == pytest.approx(1.0) and kendall_tau(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0) and kendall_tau(x, -x) == pytest.approx(-1.0)
    assert mse(x, x) == 0.0 and top_k_overlap(x, x, 3) == 1.0


def brute_tau_b(t: np.ndarray, p: np.ndarray) -> float:
    conc = disc = ties_t = ties_p = 0
    for i, j in itertools.combinations(range(len(t)), 2):
        a, b = np.sign(t[i] - t[j]), np.sign(p[i] - p[j])
        conc += a * b > 0
        disc += a * b < 0
        ties_t += a == 0
        ties_p += b == 0
    n0 = len(t) * (len(t) - 1) / 2
    return (conc - disc) / math.sqrt((n0 - ties_t) * (n0 - ties_p))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_matches_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 8, 61).astype(float)  # many ties on both sides
    p = t + rng.integers(-3, 4, 61)
    assert kendall_tau(t, p) == pytest.approx(brute_tau_b(t, p), abs=1e-12)


def test_undefined_correlations_are_nan_and_bad_input_raises() -> None:
    assert math.isnan(pearson(TRUTH, np.ones(4)))
    assert math.isnan(kendall_tau(np.ones(3), TRUTH[:3]))
    with pytest.raises(ValueError, match="length"):
        mse(TRUTH, PRED[:3])
    with pytest.raises(ValueError, match="no values"):
        rmse(np.zeros(0), np.zeros(0))


def test_prediction_metrics_names_every_figure_and_clamps_k() -> None:
    m = prediction_metrics(TRUTH, PRED, top_k=10)
    assert set(m) == {"cells", "mse", "rmse", "pearson", "spearman", "kendall_tau", "top_k", "top_k_overlap"}
    assert m["cells"] == 4 and m["top_k"] == 4 and m["top_k_overlap"] == 1.0


def test_label_scale_round_trips_and_survives_constant_labels() -> None:
    scale = LabelScale.fit(np.array([90.0, 92.0, 94.0]))
    z = scale.normalize(np.array([90.0, 94.0]))
    assert z.mean() == pytest.approx(0.0) and scale.restore(z) == pytest.approx([90.0, 94.0])
    flat = LabelScale.fit(np.array([5.0, 5.0]))
    assert flat.std == 1.0 and flat.restore(flat.normalize(np.array([5.0]))) == pytest.approx([5.0])


def dataset_with(values: list[float]) -> Dataset:
    n = len(values)
    return Dataset(
        "nb201",
        np.zeros((n, 2), np.int8),
        np.zeros((n, 2, 2), np.uint8),
        np.full(n, 2, np.int16),
        np.asarray([f"h{i}" for i in range(n)]),
        {"acc": np.asarray(values)},
    )


def test_match_truth_leaves_out_seen_unknown_and_unlabelled_cells() -> None:
    ds = dataset_with([0.5, 0.6, float("nan"), 0.8])
    found = match_truth(["h3", "h0", "nowhere", "h2", "h1"], ds, ds.labels["acc"], exclude={"h1"})
    assert found.positions.tolist() == [0, 1] and found.truth.tolist() == [0.8, 0.5]
    assert found.used == 1 and found.unknown == 2


def test_a_missing_label_column_names_the_available_ones() -> None:
    with pytest.raises(SvgeError, match=r"no label column 'val'.*available: acc"):
        label_column(dataset_with([1.0]), "val", "data.h5")
