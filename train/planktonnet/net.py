"""PlanktonNet: the network a ModelSpec describes, as an nn.Module.

    net = PlanktonNet(spec)
    probs = net([xa, xb, feats])        # one tensor per branch, in spec order:
                                        # image branch [N, 1, S, S], size features [N, F]
    logits = net(inputs, logits=True)   # everything but the final softmax (for training)

`net.state_dict()` and `net.load_state_dict()` use the tensor names of
models/FORMAT.md (`<layer name>.weight`, `<layer name>.bias`), in the C
loader's layer order, so a state dict is exactly a weights.safetensors
payload. Internally the layers live in ModuleLists (layer names may contain
dots, which nn.Module names may not); two state-dict hooks translate the keys,
and they also work when the net is a submodule of a larger training module.
`named_parameters()` keeps the internal names.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from . import layers as L
from .spec import Layer, ModelSpec


def build_layer(layer: Layer, spec: ModelSpec) -> nn.Module:
    """The reference module of one layer (shapes must have been inferred)."""
    t, i = layer.type, layer.in_shape
    if t == "cyclic_slice":
        return L.CyclicSlice(spec.views)
    if t == "conv":
        return L.Conv(i.c, layer.filters, layer.kernel, layer.stride, layer.pad, layer.activation,
                      layer.slope)
    if t == "leaky_relu":
        return L.LeakyReLU(layer.slope)
    if t == "maxpool":
        return L.MaxPool(layer.size, layer.stride)
    if t == "cyclic_roll":
        return L.CyclicRoll(i.views)
    if t == "cyclic_pool":
        return L.CyclicPool(i.views, layer.mode)
    if t == "dense":
        return L.Dense(i.h * i.w * i.c, layer.units, layer.activation, layer.slope)
    if t == "maxout":
        return L.Maxout(layer.pieces)
    if t == "global_avg_pool":
        return L.GlobalAvgPool()
    if t == "dropout":
        return L.Dropout(layer.rate)
    if t == "softmax":
        return L.Softmax()
    raise ValueError("unknown layer type %r" % t)


class PlanktonNet(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.branch_layers = nn.ModuleList(
            nn.ModuleList(build_layer(l, spec) for l in b.layers) for b in spec.branches)
        self.head_layers = nn.ModuleList(build_layer(l, spec) for l in spec.head)

        # internal state-dict key (relative to this module) -> FORMAT.md tensor name
        self._key_map: "OrderedDict[str, str]" = OrderedDict()
        lists = [("branch_layers.%d" % b, br.layers) for b, br in enumerate(spec.branches)]
        lists.append(("head_layers", spec.head))
        for prefix, layer_list in lists:
            for k, l in enumerate(layer_list):
                if l.has_weights:
                    for p in ("weight", "bias"):
                        self._key_map["%s.%d.%s" % (prefix, k, p)] = "%s.%s" % (l.name, p)
        self._register_state_dict_hook(PlanktonNet._to_format_names)
        self._register_load_state_dict_pre_hook(PlanktonNet._from_format_names, with_module=True)

    # ---- state dict naming

    @staticmethod
    def _to_format_names(module, destination, prefix, local_metadata):
        # Two phases (pop all, then insert) so no name can shadow another mid-way.
        moved = [(prefix + ext, destination.pop(prefix + internal))
                 for internal, ext in module._key_map.items() if prefix + internal in destination]
        for k, v in moved:
            destination[k] = v
        return destination

    @staticmethod
    def _from_format_names(module, state_dict, prefix, local_metadata, strict, missing_keys,
                           unexpected_keys, error_msgs):
        moved = [(prefix + internal, state_dict.pop(prefix + ext))
                 for internal, ext in module._key_map.items() if prefix + ext in state_dict]
        for k, v in moved:
            state_dict[k] = v

    def tensor_names(self) -> List[str]:
        """FORMAT.md tensor names in the C loader's order."""
        return list(self._key_map.values())

    def export_tensors(self) -> Dict[str, torch.Tensor]:
        """name -> detached CPU float tensor, ready for safetensors_io.write()."""
        return OrderedDict((k, v.detach().cpu()) for k, v in self.state_dict().items())

    # ---- forward

    def input_shapes(self, n: int) -> List[tuple]:
        """The shape of each branch's input tensor for a batch of n images."""
        return [(n, 1, b.input.size, b.input.size) if b.input.kind == "image"
                else (n, len(b.input.features)) for b in self.spec.branches]

    def forward_branch(self, b: int, x: torch.Tensor) -> torch.Tensor:
        """Branch b on its input: [N, 1, S, S] or [N, F] -> [N, branch width]."""
        bs = self.spec.branches[b]
        if bs.input.kind == "image":
            if x.dim() == 3:
                x = x.unsqueeze(1)
            S = bs.input.size
            if x.dim() != 4 or tuple(x.shape[1:]) != (1, S, S):
                raise ValueError("branch %s expects [N, 1, %d, %d], got %s" % (bs.name, S, S,
                                                                             tuple(x.shape)))
        elif x.dim() != 2 or x.shape[1] != len(bs.input.features):
            raise ValueError("branch %s expects [N, %d], got %s" % (bs.name, len(bs.input.features),
                                                                   tuple(x.shape)))
        n = x.shape[0]
        for m in self.branch_layers[b]:
            x = m(x)
        return x.reshape(n, -1)

    def forward(self, inputs: Sequence[torch.Tensor], logits: bool = False) -> torch.Tensor:
        if len(inputs) != len(self.spec.branches):
            raise ValueError("expected %d branch inputs, got %d" % (len(self.spec.branches),
                                                                    len(inputs)))
        x = torch.cat([self.forward_branch(b, x) for b, x in enumerate(inputs)], dim=1)
        calibrated = not logits and self.spec.temperature != 1.0
        head = self.head_layers[:-1] if logits or calibrated else self.head_layers
        for m in head:
            x = m(x)
        if calibrated:   # models/FORMAT.md "Calibration": softmax(z / T) = p^(1/T), renormalised
            x = torch.softmax(x / self.spec.temperature, dim=1)
        return x
