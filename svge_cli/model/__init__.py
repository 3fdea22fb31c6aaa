"""SVGe model: plain torch modules on padded dense graph batches."""

from svge_cli.model.config import ModelConfig
from svge_cli.model.layers import bf16_matmuls
from svge_cli.model.runtime import configure_cpu
from svge_cli.model.svge import SVGe, reverse_graphs, union_graphs
from svge_cli.model.weights import load_state_arrays, state_arrays

__all__ = [
    "ModelConfig",
    "SVGe",
    "bf16_matmuls",
    "configure_cpu",
    "load_state_arrays",
    "reverse_graphs",
    "state_arrays",
    "union_graphs",
]
