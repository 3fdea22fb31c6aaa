"""Zero-cost proxies: score a cell's freshly initialised network without training it.

* ``synflow`` (Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al. 2021):
  data-free.  Every parameter is replaced by its absolute value, the network
  runs in float64 in eval mode (batch norm then only rescales) on an all-ones
  input, and the score is the sum over conv and linear weights of
  ``theta * d(sum of outputs)/d theta``.
* ``grad_norm``: sum over conv and linear layers of the L2 norm of the weight
  gradient of the cross-entropy loss on one batch.
* ``snip`` (Lee et al. 2019): sum over conv and linear weights of
  ``|theta * dL/d theta|`` on one batch.
* ``jacob_cov`` (Mellor et al. 2021, v1): the input-gradient Jacobian of the
  summed outputs, one row per image; with the eigenvalues v of its correlation
  matrix, the score is ``-sum(log(v + k) + 1 / (v + k))``, k = 1e-5.  A network
  whose output ignores its input has no correlation to speak of and scores -inf.
* ``naswot`` (Mellor et al. 2021, v2): the log-determinant of the kernel
  counting, for each pair of images, the ReLUs on which their binary activation
  codes agree.
* ``params`` and ``flops`` (multiply-adds at 32 x 32): the naive baselines,
  counted from the cell's structure without building the network.

Higher is better for every proxy.  Batches are a seeded standard-normal batch
with random labels unless the caller passes real images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.memory import ensure_fits
from svge_cli.networks import INPUT_SHAPE, build
from svge_cli.networks.counting import counts
from svge_cli.spaces import SearchSpace

#: how a proxy reads a cell: counted from its structure, from its network alone, or from the network on a batch
COUNTED, DATA_FREE, ON_BATCH = "counted", "data-free", "on-batch"


@dataclass(frozen=True)
class Proxy:
    """A registered zero-cost proxy: its name, what it reads, and whether its values multiply up (so that
    predictors read it on a signed log scale)."""

    name: str
    reads: str
    log_scale: bool
    score: Callable[..., float]


#: every proxy, in the order the help and error lines list them; filled by `register_proxy`
PROXY_TABLE: dict[str, Proxy] = {}


def register_proxy(name: str, reads: str, log_scale: bool) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Add the decorated scoring function to PROXY_TABLE: the one place a proxy is declared.

    Args:
        name: the proxy's name, as users pass it; registering a name twice raises ValueError.
        reads: what the proxy reads, which decides how `score_cell` calls it: COUNTED (arch, space,
            num_classes), DATA_FREE (model, shape) or ON_BATCH (model, images, labels).
        log_scale: whether the proxy's values multiply up, so predictors read them on a signed log scale.

    Returns:
        A decorator that registers the scoring function and gives it back unchanged.
    """

    def add(score: Callable[..., float]) -> Callable[..., float]:
        if name in PROXY_TABLE:
            raise ValueError(f"proxy {name!r} is registered twice")
        PROXY_TABLE[name] = Proxy(name, reads, log_scale, score)
        return score

    return add


#: Abdelfattah et al. score the data-dependent proxies on one batch of 64 images
DEFAULT_BATCH = 64
JACOB_K = 1e-5


def random_batch(
    batch_size: int = DEFAULT_BATCH, seed: int = 0, num_classes: int = 10, shape: tuple[int, ...] = INPUT_SHAPE
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded standard-normal image batch with uniform random labels.

    Args:
        batch_size: images in the batch.
        seed: seeds both the images and the labels.
        num_classes: labels are drawn uniformly from 0 .. num_classes - 1.
        shape: the (channels, height, width) of one image.

    Returns:
        float32 images of shape (batch_size, *shape) and int64 labels of shape (batch_size,), on the CPU.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *shape), generator=gen)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen)
    return x, y


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@register_proxy("synflow", DATA_FREE, log_scale=True)
def synflow(model: nn.Module, shape: tuple[int, ...] = INPUT_SHAPE) -> float:
    """Data-free synaptic flow; changes the model's weights (pass a network built for scoring).

    The sum of ``theta * dR/d theta`` over a layer's weights equals the inner
    product of the layer's output (less its bias) with ``dR/d output``, because
    the output is linear in the weights; so only gradients with respect to
    activations are computed, never weight gradients (about a third less work).
    """
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
            p.requires_grad_(False)
    seen: list[tuple[nn.Module, torch.Tensor]] = []

    def keep(module: nn.Module, inputs, output: torch.Tensor) -> None:
        if output.requires_grad:  # else it is computed from zeros alone and adds no flow
            output.retain_grad()
            seen.append((module, output))

    handles = [m.register_forward_hook(keep) for m in _weighted_layers(model)]
    try:
        device = next(model.parameters()).device
        x = torch.ones((1, *shape), dtype=torch.float64, device=device, requires_grad=True)
        out = model(x)
        if not out.requires_grad:  # the output ignores the input: every flow is zero (no biases before it)
            return 0.0
        out.sum().backward()
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    with torch.no_grad():
        for module, z in seen:
            if z.grad is None:
                continue
            flow = (z.grad * z).sum()
            if module.bias is not None:
                per_unit = z.grad.sum(0) if z.dim() == 2 else z.grad.sum((0, 2, 3))
                flow = flow - (per_unit * module.bias).sum()
            total += float(flow)
    return total


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.train().zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


@register_proxy("grad_norm", ON_BATCH, log_scale=True)
def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over conv and linear layers of the L2 norm of the cross-entropy loss's weight gradient.

    Leaves the model in training mode with its gradients set.

    Args:
        model: the freshly initialised network to score.
        x: the (B, C, H, W) image batch, on the model's device.
        y: the B class labels of the batch, on the same device.

    Returns:
        The score (higher is better).
    """
    _loss_grads(model, x, y)
    with torch.no_grad():
        return float(sum(m.weight.grad.norm() for m in _weighted_layers(model) if m.weight.grad is not None))


@register_proxy("snip", ON_BATCH, log_scale=True)
def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP: sum over conv and linear weights of ``|theta * dL/d theta|`` for the cross-entropy loss.

    Leaves the model in training mode with its gradients set.

    Args:
        model: the freshly initialised network to score.
        x: the (B, C, H, W) image batch, on the model's device.
        y: the B class labels of the batch, on the same device.

    Returns:
        The score (higher is better).
    """
    _loss_grads(model, x, y)
    with torch.no_grad():
        return float(
            sum((m.weight * m.weight.grad).abs().sum() for m in _weighted_layers(model) if m.weight.grad is not None)
        )


@register_proxy("jacob_cov", ON_BATCH, log_scale=False)
def jacob_cov(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """Jacobian covariance: how little the per-image input gradients of the summed outputs correlate.

    Args:
        model: the freshly initialised network to score (run in training mode).
        x: the (B, C, H, W) image batch, on the model's device; a copy is differentiated.
        y: ignored (no labels are needed); taken so every on-batch proxy is called alike.

    Returns:
        ``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues v of the (B, B) correlation matrix, or
        -inf when the output ignores the input or the correlations are not finite.
    """
    model.train().zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.ones_like(out))
    if x.grad is None:  # the output does not depend on the input
        return float("-inf")
    jacobian = x.grad.reshape(x.shape[0], -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobian)
    if not np.all(np.isfinite(corr)):
        return float("-inf")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOB_K) + 1.0 / (v + JACOB_K)))


@register_proxy("naswot", ON_BATCH, log_scale=False)
def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """NASWOT: log-determinant of the kernel counting, per pair of images, the ReLUs whose codes agree.

    One forward pass in training mode, without gradients; a ReLU's code is the sign pattern of its input.

    Args:
        model: the freshly initialised network to score.
        x: the (B, C, H, W) image batch, on the model's device; the kernel is (B, B).
        y: ignored (no labels are needed); taken so every on-batch proxy is called alike.

    Returns:
        The log-determinant, or -inf when the kernel's determinant is not positive.
    """
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal kernel
        code = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel = kernel + code @ code.T + (1.0 - code) @ (1.0 - code).T

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model.train()(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else float("-inf")


@register_proxy("params", COUNTED, log_scale=True)
def params(arch: Arch, space: str | SearchSpace, num_classes: int = 10) -> float:
    """Parameters of the benchmark's own network, counted from the cell's structure.

    Args:
        arch: the cell.
        space: its search space, by name or as a space object.
        num_classes: outputs of the network's final layer.

    Returns:
        The parameter count, as a float like every proxy score.
    """
    return float(counts(arch, space, num_classes=num_classes).params)


@register_proxy("flops", COUNTED, log_scale=True)
def flops(arch: Arch, space: str | SearchSpace, num_classes: int = 10) -> float:
    """Multiply-adds of the benchmark's own network at 32 x 32, counted from the cell's structure.

    Args:
        arch: the cell.
        space: its search space, by name or as a space object.
        num_classes: outputs of the network's final layer.

    Returns:
        The multiply-add count of the convolutions and linear layers, as a float like every proxy score.
    """
    return float(counts(arch, space, num_classes=num_classes).macs)


PROXIES = tuple(PROXY_TABLE)


def check_proxy(name: str) -> str:
    if name not in PROXIES:
        raise SvgeError(f"unknown proxy {name!r} (known: {', '.join(PROXIES)})")
    return name


def score_cell(
    arch: Arch,
    space: str | SearchSpace,
    proxy: str,
    seed: int = 0,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    num_classes: int = 10,
    shape: tuple[int, ...] = INPUT_SHAPE,
    network: dict[str, Any] | None = None,
) -> float:
    """One proxy score for one cell: a network initialised from `seed` (built with the `network` options,
    e.g. fewer channels), scored on `batch` (or a seeded random one of images of `shape`).

    Counted proxies (``params``, ``flops``) read only `arch`, `space` and `num_classes`.

    Args:
        arch: the cell to score.
        space: its search space, by name or as a space object.
        proxy: the registered proxy name; SvgeError for an unknown one.
        seed: seeds the network's initialisation and, when `batch` is None, the random batch.
        batch: (images, labels) for the on-batch proxies, moved to `device`; None draws a seeded
            standard-normal batch of DEFAULT_BATCH images.
        device: where the network is built and scored.
        num_classes: outputs of the network's final layer, and the range of the random labels.
        shape: (channels, height, width) of the random batch's images and of synflow's all-ones input.
        network: builder options for the scored network (e.g. fewer channels); None builds the
            benchmark's own.

    Returns:
        The proxy's score (higher is better); jacob_cov and naswot may give -inf.
    """
    entry = PROXY_TABLE[check_proxy(proxy)]
    if entry.reads == COUNTED:  # the benchmark's own network, whatever `network` says
        return entry.score(arch, space, num_classes)
    torch.manual_seed(seed)
    model = build(arch, space, num_classes=num_classes, **(network or {})).to(device)
    if entry.reads == DATA_FREE:
        return entry.score(model, shape)
    x, y = batch if batch is not None else random_batch(seed=seed, num_classes=num_classes, shape=shape)
    return entry.score(model, x.to(device), y.to(device))


def proxy_scores(
    space: str | SearchSpace,
    archs: Sequence[Arch],
    proxy: str,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[], None] | None = None,
    shape: tuple[int, ...] = INPUT_SHAPE,
    network: dict[str, Any] | None = None,
) -> np.ndarray:
    """Scores of many cells (float64, higher is better), for scripts and as a search objective.

    Every cell's network is initialised from the same `seed` and scored on the
    same batch (`batch`, or a seeded random one of `batch_size` images), so a
    cell's score does not depend on which other cells are scored with it.

    Args:
        space: the cells' search space, by name or as a space object.
        archs: the cells to score, in order.
        proxy: the registered proxy name; SvgeError for an unknown one.
        seed: seeds every network's initialisation and the shared random batch.
        batch_size: images in the random batch, drawn only when `batch` is None and the proxy reads a
            batch; SvgeError when it would not fit in the available memory.
        batch: (images, labels) shared by all cells; None draws a seeded random one.
        device: where each network is built and scored.
        progress: called with no arguments after each cell is scored; None reports nothing.
        shape: (channels, height, width) of the random batch's images and of synflow's input.
        network: builder options for the scored networks; None builds the benchmark's own.

    Returns:
        The scores, float64 of shape (len(archs),), in the order of `archs`.
    """
    check_proxy(proxy)
    if batch is None and PROXY_TABLE[proxy].reads == ON_BATCH:
        # the input batch and the (B, B) kernel or correlation matrix: the least the proxy allocates
        need = batch_size * math.prod(shape) * 4 + batch_size**2 * 8
        ensure_fits(need, f"a proxy batch of {batch_size:,} images", "pass a smaller --batch-size")
        batch = random_batch(batch_size, seed, shape=shape)
    scores = np.empty(len(archs), dtype=np.float64)
    for i, arch in enumerate(archs):
        scores[i] = score_cell(arch, space, proxy, seed, batch, device, shape=shape, network=network)
        if progress is not None:
            progress()
    return scores
