"""The training loop: history, evaluation, schedules, interruption and exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_model import make_model, random_graphs

from svge_cli.model import load_state_arrays, state_arrays
from svge_cli.train_config import TrainConfig
from svge_cli.training.loop import fit, learning_rate

DATA = random_graphs(20, 24)
TRAIN, TEST = np.arange(18), np.arange(18, 24)


def run(cfg: TrainConfig, **kw: object) -> tuple[list[dict], object]:
    model = make_model(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return fit(model, opt, *DATA, TRAIN, TEST, cfg, **kw), model


def test_fit_records_every_epoch_and_evaluates() -> None:
    seen: list[int] = []
    steps: list[tuple[int, int, int]] = []
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-3, eval_every=2)
    history, _ = run(
        cfg, on_epoch=lambda e, h: seen.append(e), on_step=lambda e, s, total, loss: steps.append((e, s, total))
    )
    assert [h["epoch"] for h in history] == [1, 2, 3] and seen == [1, 2, 3]
    assert steps[:3] == [(1, 0, 3), (1, 1, 3), (1, 2, 3)] and len(steps) == 9
    assert all(np.isfinite(h["loss"]) and h["lr"] == 1e-3 for h in history)
    assert "test_recon_greedy" not in history[0]
    assert 0.0 <= history[1]["test_recon_greedy"] <= 1.0 and "test_recon_greedy" in history[2]


def test_resume_continues_exactly() -> None:
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-3, eval_every=5, seed=4)
    full, model_full = run(cfg)

    saved: dict[str, object] = {}

    def checkpoint(epoch: int, history: list[dict]) -> None:
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)
        saved.update(epoch=epoch, history=[dict(h) for h in history], weights=state_arrays(model), opt=buf.getvalue())
        if epoch == 2:
            raise KeyboardInterrupt

    model = make_model(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    with pytest.raises(KeyboardInterrupt):
        fit(model, opt, *DATA, TRAIN, TEST, cfg, on_epoch=checkpoint)
    assert saved["epoch"] == 2

    resumed = make_model(seed=99)
    load_state_arrays(resumed, saved["weights"])
    opt2 = torch.optim.Adam(resumed.parameters(), lr=cfg.lr)
    opt2.load_state_dict(torch.load(io.BytesIO(saved["opt"])))
    history = fit(resumed, opt2, *DATA, TRAIN, TEST, cfg, start_epoch=saved["epoch"], history=saved["history"])
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[2]["loss"] == full[2]["loss"]
    for k, v in state_arrays(model_full).items():
        assert np.array_equal(v, state_arrays(resumed)[k]), k


def test_bf16_training_runs() -> None:
    history, _ = run(TrainConfig(epochs=1, batch_size=8, lr=1e-3, precision="bf16"))
    assert np.isfinite(history[0]["loss"])
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")


def test_resume_needs_matching_history() -> None:
    with pytest.raises(ValueError, match="history"):
        run(TrainConfig(epochs=2), start_epoch=1, history=[])


def test_interrupt_between_steps_propagates() -> None:
    finished: list[int] = []

    def stop(epoch: int, step: int, total: int, loss: float) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(TrainConfig(epochs=3, batch_size=8), on_step=stop, on_epoch=lambda e, h: finished.append(e))
    assert finished == [1]


def test_learning_rate_schedules() -> None:
    flat = [{"loss": 1.0}] * 30
    plateau = TrainConfig(lr=1.0, lr_schedule="plateau")
    assert learning_rate(plateau, 0, flat) == 1.0
    assert learning_rate(plateau, 11, flat) == 1.0
    assert learning_rate(plateau, 12, flat) == pytest.approx(0.1)
    falling = [{"loss": 1.0 / (i + 1)} for i in range(30)]
    assert learning_rate(plateau, 30, falling) == 1.0
    cosine = TrainConfig(lr=1.0, epochs=10, lr_schedule="cosine")
    assert learning_rate(cosine, 0, []) == 1.0 and learning_rate(cosine, 5, []) == pytest.approx(0.5)
    assert learning_rate(TrainConfig(lr=0.3, lr_schedule="constant"), 50, flat) == 0.3
    with pytest.raises(ValueError):
        TrainConfig(lr_schedule="step")
