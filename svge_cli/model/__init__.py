"""SVGe model: plain torch modules on padded dense graph batches."""
from .config import ModelConfig
from .layers import bf16_matmuls
from .runtime import configure_cpu
from .svge import SVGe, reverse_graphs, union_graphs
from .weights import load_state_arrays, state_arrays

__all__ = ["ModelConfig", "SVGe", "bf16_matmuls", "configure_cpu", "load_state_arrays", "reverse_graphs",
           "state_arrays", "union_graphs"]
