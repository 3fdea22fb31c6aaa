"""Train a cell's network on CIFAR-10: seeded, checkpointed every epoch, resumable.

The recipe follows NAS-Bench-201's (SGD with Nesterov momentum 0.9, learning
rate 0.1 annealed by a cosine to 0, weight decay 5e-4, random crops with 4
pixels of padding and horizontal flips, cross-entropy); the epochs are the
caller's choice (NAS-Bench-201 trains 200, its short schedule 12).  A share of
the training images, drawn with the seed, is held out for validation; the test
batch is only evaluated, never trained on.

Same seed, same data, same device: same numbers, and a run resumed from its
epoch checkpoint continues exactly as an uninterrupted one (the data order and
augmentation of epoch e depend only on the seed and e).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from svge_cli.arch import Arch
from svge_cli.atomic import atomic_path
from svge_cli.errors import SvgeError
from svge_cli.networks import build, count_params
from svge_cli.networks.cifar import Cifar, to_tensor
from svge_cli.spaces import SearchSpace

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    valid_share: float = 0.1
    augment: bool = True
    seed: int = 0


@dataclass
class TrainResult:
    valid_acc: float  # percent, after the last epoch
    test_acc: float
    epochs: int
    params: int
    history: list[dict[str, float]]


def split_rows(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of n training images; at least one image on each side when n >= 2.

    Args:
        n: the number of training images; SvgeError when it is below 2.
        share: the fraction to hold out for validation, rounded and kept within 1 .. n - 1; 0 or
            less holds none out.
        seed: seeds the permutation that picks the held-out images.

    Returns:
        The sorted row indices of the training images and of the validation images, which together
        cover 0 .. n - 1.
    """
    if n < 2:
        raise SvgeError(f"need at least 2 training images to hold some out for validation, got {n}")
    n_valid = min(n - 1, max(1, round(share * n))) if share > 0 else 0
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images, and random horizontal flips."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 500
) -> float:
    """Top-1 accuracy in percent (nan when there are no images).

    Args:
        model: the network to score; it is switched to eval mode.
        x: the (N, 3, H, W) normalised images; each slice is moved to `device`.
        y: the N true labels, on the CPU.
        device: where the model runs.
        batch_size: images per forward pass.

    Returns:
        The percentage of images whose highest logit is their label, or nan when `x` is empty.
    """
    if len(x) == 0:
        return float("nan")
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            logits = model(x[s : s + batch_size].to(device))
            correct += int((logits.argmax(1).cpu() == y[s : s + batch_size]).sum())
    return 100.0 * correct / len(x)


def run_key(space: SearchSpace, arch: Arch, cfg: TrainConfig) -> str:
    """A short name for a (cell, recipe) pair: the default checkpoint's file name.

    Args:
        space: the cell's search space; its name and native cell format enter the key.
        arch: the cell.
        cfg: the training recipe; every field, the seed included, enters the key.

    Returns:
        16 hexadecimal characters of an MD5 digest of space, cell and recipe.
    """
    text = f"{space.name}|{space.format_native(arch)}|{sorted(asdict(cfg).items())}"
    return hashlib.md5(text.encode()).hexdigest()[:16]


def train_cell(
    space: SearchSpace,
    arch: Arch,
    data: Cifar,
    cfg: TrainConfig,
    device: torch.device,
    checkpoint: Path | None = None,
    resume: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train `arch`'s network for `cfg.epochs`; one checkpoint per epoch at `checkpoint` (if given).

    `on_step(epoch, steps_in_epoch, loss)` runs after every step, `on_epoch(stats)`
    after every epoch.  With `resume`, training continues from `checkpoint`,
    which must come from the same cell, recipe and data.

    Args:
        space: the cell's search space, which picks the network builder.
        arch: the cell to train.
        data: the CIFAR-10 images; its training images are split into training and validation rows.
        cfg: the recipe: epochs, batch size, SGD settings, validation share, augmentation and seed.
        device: where the network trains and is evaluated.
        checkpoint: the file rewritten after every epoch; None writes none.
        resume: continue from `checkpoint`; SvgeError when it is missing or from another cell,
            recipe or data set.
        on_step: called after every step with the 0-based epoch, the 1-based step within it and the
            batch's mean loss; None for no callback.
        on_epoch: called after every epoch with its stats (``epoch``, 1-based, ``train_loss`` and
            ``valid_acc`` in percent); None for no callback.

    Returns:
        Validation and test accuracy in percent after the last epoch, the epoch count, the network's
        trainable parameters and every epoch's stats (those before a resume included).
    """
    classes = data.classes
    train_rows, valid_rows = split_rows(len(data.train_x), cfg.valid_share, cfg.seed)
    x_all = to_tensor(data.train_x)
    y_all = torch.from_numpy(data.train_y)
    x_train, y_train = x_all[train_rows], y_all[train_rows]
    x_valid, y_valid = x_all[valid_rows], y_all[valid_rows]
    x_test, y_test = to_tensor(data.test_x), torch.from_numpy(data.test_y)

    torch.manual_seed(cfg.seed)
    model = build(arch, space, num_classes=max(classes, 2)).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs * steps_per_epoch))
    identity = {
        "space": space.name,
        "cell": space.format_native(arch),
        "config": asdict(cfg),
        "train_images": len(data.train_x),
        "test_images": len(data.test_x),
    }
    start_epoch, history = 0, []
    if resume:
        start_epoch, history = _load(checkpoint, identity, model, optimizer, scheduler, device)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(x_train), generator=gen)
        total, seen = 0.0, 0
        for step, s in enumerate(range(0, len(order), cfg.batch_size)):
            rows = order[s : s + cfg.batch_size]
            xb = _augment(x_train[rows], gen) if cfg.augment else x_train[rows]
            loss = F.cross_entropy(model(xb.to(device)), y_train[rows].to(device))
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(
                    f"the training loss became {float(loss.detach())} in epoch {epoch + 1}; try a lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            total += value * len(rows)
            seen += len(rows)
            if on_step is not None:
                on_step(epoch, step + 1, value)
        stats = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "valid_acc": evaluate(model, x_valid, y_valid, device),
        }
        history.append(stats)
        if checkpoint is not None:
            _save(checkpoint, identity, model, optimizer, scheduler, epoch + 1, history)
        if on_epoch is not None:
            on_epoch(stats)
    valid_acc = evaluate(model, x_valid, y_valid, device)
    test_acc = evaluate(model, x_test, y_test, device)
    return TrainResult(valid_acc, test_acc, cfg.epochs, count_params(model), history)


def _save(path: Path, identity: dict, model, optimizer, scheduler, epoch: int, history: list) -> None:
    state = {
        "version": CHECKPOINT_VERSION,
        "identity": identity,
        "epoch": epoch,
        "history": history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def _load(path: Path | None, identity: dict, model, optimizer, scheduler, device) -> tuple[int, list]:
    if path is None or not Path(path).is_file():
        raise SvgeError(f"--resume: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one message
        raise SvgeError(f"{path}: not a train-cell checkpoint ({e.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise SvgeError(f"{path}: not a train-cell checkpoint of format version {CHECKPOINT_VERSION}")
    if state.get("identity") != identity:
        raise SvgeError(f"{path}: was written for another cell, recipe or data set; drop --resume to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["history"])
