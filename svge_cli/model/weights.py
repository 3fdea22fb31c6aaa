"""Model weights as plain numpy arrays, the form `artifacts.Checkpoint` keeps them in."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def state_arrays(model: nn.Module, dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Every tensor of the state dict as a numpy array (float16 halves a shipped file)."""
    return {k: v.detach().cpu().numpy().astype(dtype) for k, v in model.state_dict().items()}


def load_state_arrays(model: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load `state_arrays` output; missing, extra or mis-shaped tensors raise ValueError."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
    if missing or extra:
        raise ValueError(f"weights do not fit this model (missing: {missing[:3]}, unexpected: {extra[:3]})")
    state = {}
    for k, ref in own.items():
        a = np.asarray(arrays[k])
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(f"weight {k} has shape {a.shape}, the model expects {tuple(ref.shape)}")
        if not np.isfinite(a).all():
            raise ValueError(f"weight {k} contains NaN or infinite values")
        state[k] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(state)
