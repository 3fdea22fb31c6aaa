"""Models in and out of checkpoints, and which checkpoint a command uses.

A command that needs a model takes, in order: an explicit --checkpoint, the
workspace's latest checkpoint for the space, or the pretrained one shipped with
the package (saying so on stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from svge_cli.artifacts import Checkpoint
from svge_cli.errors import StoreError, SvgeError
from svge_cli.model import ModelConfig, SVGe, load_state_arrays, state_arrays
from svge_cli.model.regressor import STATE_PREFIX as REGRESSOR_PREFIX
from svge_cli.storage import store
from svge_cli.storage.workspace import Workspace, pretrained_checkpoint


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SvgeError("--device cuda asked for, but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def model_from_checkpoint(ck: Checkpoint, device: torch.device | str = "cpu") -> SVGe:
    """Rebuild the model a checkpoint describes, weights loaded, in eval mode.

    A fine-tuned checkpoint's regressor tensors are skipped: every command can use
    its VAE (prediction.load_predictor rebuilds the regressor too).
    """
    try:
        config = ModelConfig.from_dict(ck.config["model"])
        model = SVGe(config)
        load_state_arrays(model, {k: v for k, v in ck.state.items() if not k.startswith(REGRESSOR_PREFIX)})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise StoreError(f"checkpoint does not describe an svge model this version can build ({e})") from None
    return model.to(device).eval()


def load_model(
    ws: Workspace, space: str, path: str | None, device: str, note: Callable[[str], None]
) -> tuple[Checkpoint, Path, SVGe]:
    """The checkpoint a command uses (see `resolve`), where it lies, and its model on `device`.

    Args:
        ws: the workspace searched for the latest checkpoint of `space`.
        space: name of the search space the model must be trained on.
        path: an explicit checkpoint file (--checkpoint), or None to fall back as `resolve` does.
        device: "cpu", "cuda" or "auto" (CUDA when available).
        note: hears the messages for the user on stderr (fallbacks, pretrained use).

    Returns:
        The checkpoint, its file, and the model rebuilt from it in eval mode on the device.
    """
    ck, where = resolve(ws, space, path, note)
    return ck, where, model_from_checkpoint(ck, pick_device(device))


def snapshot(space: str, model: SVGe, **fields) -> Checkpoint:
    """A checkpoint of `model` (fp32 weights) with the given extra fields."""
    config = {"model": model.cfg.to_dict()} | fields.pop("config", {})
    return Checkpoint(space, config, state_arrays(model), **fields)


def resolve(ws: Workspace, space: str, path: str | None, note: Callable[[str], None]) -> tuple[Checkpoint, Path]:
    """The checkpoint a command should use for `space` (see the module docstring).

    Args:
        ws: the workspace searched for the latest checkpoint of `space`.
        space: name of the search space; a checkpoint of another space is refused on load.
        path: an explicit checkpoint file, which wins when given.
        note: hears why a remembered checkpoint was skipped, or that the shipped one is used.

    Returns:
        The loaded checkpoint and the file it came from.

    Raises:
        SvgeError: when there is no explicit, workspace or shipped checkpoint for `space`.
    """
    if path is not None:
        return store.load_checkpoint(path, space), Path(path)
    latest = ws.latest_checkpoint(space, note)
    if latest is not None:
        return store.load_checkpoint(latest, space), latest
    shipped = pretrained_checkpoint(space)
    if shipped is None:
        raise SvgeError(
            f"no {space} checkpoint in the workspace {ws.root} and none shipped; "
            f"run `svge train-vae --space {space}` first"
        )
    note(f"no {space} checkpoint in {ws.root}: using the pretrained one shipped with svge ({shipped.name})")
    return store.load_checkpoint(shipped, space), shipped
