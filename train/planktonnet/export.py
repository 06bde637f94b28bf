"""Model folders (models/FORMAT.md): model.yaml + weights.safetensors.

    write_model(out_dir, spec, net, dtype="f32")   # net: PlanktonNet or {name: tensor}
    spec, net = load_model(model_dir)              # eval-mode PlanktonNet with the weights
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Tuple, Union

import numpy as np
import torch

from . import safetensors_io
from .net import PlanktonNet
from .spec import ModelSpec, load_spec, parse_spec

YAML_NAME = "model.yaml"
WEIGHTS_NAME = "weights.safetensors"
_DTYPES = {"f32": "F32", "f16": "F16", "F32": "F32", "F16": "F16"}


def check_tensors(spec: ModelSpec, tensors: Mapping[str, object]) -> None:
    """Raises ValueError unless `tensors` has exactly the spec's tensors with their shapes."""
    want = spec.weight_shapes()
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError("missing tensor '%s' (shape %s)" % (name, list(shape)))
        got = tuple(tensors[name].shape)
        if got != tuple(shape):
            raise ValueError("tensor '%s' has shape %s, the spec needs %s" % (name, list(got),
                                                                            list(shape)))
    extra = [k for k in tensors if k not in want]
    if extra:
        raise ValueError("tensor '%s' is not used by any layer%s" % (
            extra[0], "" if len(extra) == 1 else " (and %d more)" % (len(extra) - 1)))


def write_model(out_dir: str, spec: ModelSpec,
                weights: Union[PlanktonNet, Mapping[str, object]], dtype: str = "f32",
                metadata: Optional[Mapping[str, str]] = None, yaml_text: Optional[str] = None,
                ) -> None:
    """Writes out_dir/model.yaml and out_dir/weights.safetensors.

    model.yaml is `yaml_text` if given, else the spec's source text when it was
    parsed from one (comments kept), else the spec serialised with every
    default explicit. The text is re-parsed and must describe the same tensors.
    """
    if dtype not in _DTYPES:
        raise ValueError("dtype must be f32 or f16, got %r" % dtype)
    tensors = weights.export_tensors() if isinstance(weights, PlanktonNet) else dict(weights)
    # tensors in the C loader's layer order
    order = list(spec.weight_shapes())
    check_tensors(spec, tensors)
    tensors = {k: tensors[k] for k in order}
    text = yaml_text if yaml_text is not None else (spec.source_text or spec.to_yaml())
    reparsed = parse_spec(text, os.path.join(out_dir, YAML_NAME))
    if reparsed.weight_shapes() != spec.weight_shapes():
        raise ValueError("model.yaml text does not describe the spec's tensors")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, YAML_NAME), "w", encoding="utf-8") as f:
        f.write(text)
    meta = {"format": "1", "model": spec.name, "version": spec.version}
    meta.update(metadata or {})
    safetensors_io.write(os.path.join(out_dir, WEIGHTS_NAME), tensors, _DTYPES[dtype], meta)


def load_weights(model_dir: str) -> "dict[str, np.ndarray]":
    """The folder's tensors as float32 numpy arrays (F16 widened)."""
    return safetensors_io.read(os.path.join(model_dir, WEIGHTS_NAME))[0]


def load_model(model_dir: str, dtype: torch.dtype = torch.float32) -> Tuple[ModelSpec, PlanktonNet]:
    """Reads a model folder -> (spec, eval-mode PlanktonNet in `dtype` holding the weights)."""
    spec = load_spec(os.path.join(model_dir, YAML_NAME))
    tensors = load_weights(model_dir)
    check_tensors(spec, tensors)
    net = PlanktonNet(spec)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32))
                         for k, v in tensors.items()})
    return spec, net.to(dtype).eval()
