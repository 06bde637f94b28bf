"""planktonnet: the PyTorch side of planktond's model format (models/FORMAT.md).

- spec:           model.yaml -> dataclasses (defaults, validation, shape inference)
- layers:         reference modules for every layer type (cyclic slice/roll/pool ...)
- net:            PlanktonNet, an nn.Module built from a spec
- warp:           the preprocessing warp and size features, in numpy float64
- safetensors_io: reading and writing .safetensors (F32, F16) without the package
- export:         writing and reading model folders (model.yaml + weights.safetensors)
"""

from .spec import ModelSpec, SpecError, load_spec, parse_spec
from .net import PlanktonNet
from .export import load_model, write_model

__all__ = ["ModelSpec", "SpecError", "load_spec", "parse_spec", "PlanktonNet", "load_model",
           "write_model"]
