"""model.yaml (models/FORMAT.md, format 1) as dataclasses.

`load_spec(path)` / `parse_spec(text, filename)` read a description, apply the
format's defaults, check keys, types and ranges, and infer every layer's
input and output shape exactly as the C loader (models/pd_model.c) does. Errors
raise SpecError with "<file>:<line>: <where>: <what>".

Shapes are per image: `Shape(views, h, w, c)`; flat features have h = w = 1.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

# Limits shared with the C loader (models/pd_model.c).
MAX_BRANCHES = 8
MAX_LAYERS = 64
MAX_FEATURES = 8
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 65536          # conv filters, dense units
MAX_CLASSES = 10000
MAX_LABEL_LEN = 127
MAX_KERNEL = 64            # conv kernel and pad, pool size and stride, maxout pieces
MAX_CHANNELS = 1 << 20
MAX_ACTIVATION = 1 << 28   # floats of one image's activation
MAX_TTA = 1024

SYMMETRY_VIEWS = {"none": 1, "c4": 4, "d4": 8}
LAYER_TYPES = ("cyclic_slice", "conv", "leaky_relu", "maxpool", "cyclic_roll", "cyclic_pool",
               "dense", "maxout", "global_avg_pool", "dropout", "softmax")
ACTIVATIONS = ("none", "leaky_relu")
CPOOL_MODES = ("mean", "rms", "max")
FEATURES = ("log_width", "log_height", "log_area", "aspect", "log_long", "log_short",
            "log_elongation")
# Size features that a quarter turn changes (width and height swap): a c4 or d4 model must not
# use them, or turning a crop by 90 degrees would change its answer.
NOT_ROTATION_INVARIANT = ("log_width", "log_height", "aspect")
WEIGHTED_TYPES = ("conv", "dense")

# Keys allowed per layer type (besides the common `type` and `name`).
LAYER_KEYS = {
    "cyclic_slice": (),
    "conv": ("filters", "kernel", "stride", "pad", "activation", "slope"),
    "leaky_relu": ("slope",),
    "maxpool": ("size", "stride"),
    "cyclic_roll": (),
    "cyclic_pool": ("mode",),
    "dense": ("units", "activation", "slope"),
    "maxout": ("pieces",),
    "global_avg_pool": (),
    "dropout": ("rate",),
    "softmax": (),
}

DEFAULT_SLOPE = 0.01
DEFAULT_DROPOUT = 0.5  # FORMAT.md gives no default; the C loader uses 0.5


class SpecError(ValueError):
    """A model.yaml that does not follow models/FORMAT.md."""


# --------------------------------------------------------------------------
# YAML with line numbers


class _Map(dict):
    """A YAML mapping that remembers its line and each key's line and raw scalar text."""
    line = 0

    def __init__(self):
        super().__init__()
        self.key_lines: Dict[Any, int] = {}
        self.raw: Dict[Any, str] = {}


class _Seq(list):
    line = 0

    def __init__(self):
        super().__init__()
        self.item_lines: List[int] = []
        self.raw: List[Optional[str]] = []


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader, node):
    m = _Map()
    m.line = node.start_mark.line + 1
    loader.flatten_mapping(node)
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        if key in m:
            raise SpecError("%s:%d: duplicate key '%s'" % (loader.name, knode.start_mark.line + 1,
                                                             key))
        m[key] = loader.construct_object(vnode, deep=True)
        m.key_lines[key] = vnode.start_mark.line + 1
        m.raw[key] = vnode.value if isinstance(vnode, yaml.ScalarNode) else None
    return m


def _construct_seq(loader, node):
    s = _Seq()
    s.line = node.start_mark.line + 1
    for item in node.value:
        s.append(loader.construct_object(item, deep=True))
        s.item_lines.append(item.start_mark.line + 1)
        s.raw.append(item.value if isinstance(item, yaml.ScalarNode) else None)
    return s


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


# --------------------------------------------------------------------------
# dataclasses


@dataclass
class Shape:
    views: int
    h: int
    w: int
    c: int

    def numel(self) -> int:
        return self.views * self.h * self.w * self.c

    @property
    def flat(self) -> bool:
        return self.h == 1 and self.w == 1

    def __str__(self) -> str:
        return "%d view%s of %dx%dx%d" % (self.views, "" if self.views == 1 else "s",
                                          self.h, self.w, self.c)


@dataclass
class InputSpec:
    std: float
    invert: bool = True
    background: float = 255.0
    mean: float = 0.0


@dataclass
class BranchInput:
    kind: str                               # "image" | "size_features"
    size: int = 0                           # image: patch is size x size
    rescale: str = "fit"                    # image: "fit" | "fixed"
    fit_size: Optional[float] = None        # fit: scale = max(w, h) / fit_size (default size)
    factor: Optional[float] = None          # fixed: scale = factor
    features: List[str] = field(default_factory=list)  # size_features

    @property
    def length(self) -> int:
        """Floats of one image's input slot."""
        return self.size * self.size if self.kind == "image" else len(self.features)

    def to_dict(self) -> dict:
        if self.kind == "size_features":
            return {"kind": self.kind, "features": list(self.features)}
        d = {"kind": self.kind, "size": self.size, "rescale": self.rescale}
        if self.rescale == "fit":
            d["fit_size"] = _num(self.fit_size)
        else:
            d["factor"] = _num(self.factor)
        return d


@dataclass
class Layer:
    type: str
    name: str
    line: int = 0
    # conv
    filters: Optional[int] = None
    kernel: Optional[int] = None
    stride: Optional[int] = None            # conv and maxpool
    pad: Optional[int] = None
    activation: Optional[str] = None        # conv, dense
    slope: Optional[float] = None           # conv, dense, leaky_relu
    # dense
    units: Optional[int] = None
    # maxpool
    size: Optional[int] = None
    # cyclic_pool
    mode: Optional[str] = None
    # maxout
    pieces: Optional[int] = None
    # dropout
    rate: Optional[float] = None
    # filled by shape inference
    in_shape: Optional[Shape] = None
    out_shape: Optional[Shape] = None

    @property
    def has_weights(self) -> bool:
        return self.type in WEIGHTED_TYPES

    def weight_shapes(self) -> Dict[str, tuple]:
        """PyTorch layouts of this layer's tensors, keyed by their safetensors names."""
        if self.type == "conv":
            w = (self.filters, self.in_shape.c, self.kernel, self.kernel)
        elif self.type == "dense":
            w = (self.units, self.in_shape.h * self.in_shape.w * self.in_shape.c)
        else:
            return {}
        return {self.name + ".weight": w, self.name + ".bias": (w[0],)}

    def param_count(self) -> int:
        return sum(math.prod(s) for s in self.weight_shapes().values())

    def flops(self) -> int:
        """2 x multiply-adds of one image through this layer (conv and dense only)."""
        if self.type == "conv":
            o = self.out_shape
            return 2 * o.views * o.h * o.w * o.c * self.kernel * self.kernel * self.in_shape.c
        if self.type == "dense":
            i = self.in_shape
            return 2 * i.views * self.units * i.h * i.w * i.c
        return 0

    def params(self) -> dict:
        """The layer's keys with every default made explicit (for serialisation)."""
        d = {"type": self.type, "name": self.name}
        for k in LAYER_KEYS[self.type]:
            d[k] = _num(getattr(self, k))
        return d

    def describe(self) -> str:
        if self.type == "conv":
            return "conv %d %dx%d/%d pad %d%s" % (self.filters, self.kernel, self.kernel, self.stride,
                                                   self.pad, "" if self.activation == "leaky_relu"
                                                   else " linear")
        if self.type == "maxpool":
            return "maxpool %d/%d" % (self.size, self.stride)
        if self.type == "dense":
            return "dense %d%s" % (self.units, " leaky" if self.activation == "leaky_relu" else "")
        if self.type == "maxout":
            return "maxout %d" % self.pieces
        if self.type == "cyclic_pool":
            return "cyclic_pool %s" % self.mode
        return self.type


@dataclass
class Branch:
    name: str
    input: BranchInput
    layers: List[Layer]
    line: int = 0
    in_shape: Optional[Shape] = None
    out_shape: Optional[Shape] = None


@dataclass
class TTASpec:
    count: int = 0
    zoom: List[float] = field(default_factory=lambda: [0.714, 1.4])
    rotation: List[float] = field(default_factory=lambda: [0.0, 360.0])
    shear: List[float] = field(default_factory=lambda: [-10.0, 10.0])
    translate: List[float] = field(default_factory=lambda: [-8.0, 8.0])
    stretch: float = 1.2
    flip: bool = False

    def to_dict(self) -> dict:
        return {"count": self.count, "zoom": [_num(v) for v in self.zoom],
                "rotation": [_num(v) for v in self.rotation],
                "shear": [_num(v) for v in self.shear],
                "translate": [_num(v) for v in self.translate],
                "stretch": _num(self.stretch), "flip": self.flip}


@dataclass
class ModelSpec:
    name: str
    version: str
    classes: List[str]
    input: InputSpec
    branches: List[Branch]
    head: List[Layer]
    symmetry: str = "none"
    tta: TTASpec = field(default_factory=TTASpec)
    temperature: float = 1.0            # calibration: p = softmax(log(p_tta) / temperature)
    format: int = 1
    head_line: int = 0
    filename: str = "<model.yaml>"
    source_text: Optional[str] = None   # the text it was parsed from, if any

    @property
    def views(self) -> int:
        return SYMMETRY_VIEWS[self.symmetry]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def head_in(self) -> int:
        return sum(b.out_shape.c for b in self.branches)

    def all_layers(self) -> List[Layer]:
        """Every layer, branches in order then the head (the C loader's order)."""
        return [l for b in self.branches for l in b.layers] + list(self.head)

    def weight_shapes(self) -> Dict[str, tuple]:
        out = {}
        for l in self.all_layers():
            out.update(l.weight_shapes())
        return out

    def param_count(self) -> int:
        return sum(l.param_count() for l in self.all_layers())

    def flops_per_image(self) -> int:
        return sum(l.flops() for l in self.all_layers())

    def summary(self) -> str:
        lines = ["%s %s: %s, %d classes, %d params, %.1f MFLOP/image" % (
            self.name, self.version, self.symmetry, self.n_classes, self.param_count(),
            self.flops_per_image() / 1e6)]
        for b in self.branches:
            lines.append("branch %s: %s" % (b.name, b.in_shape))
            for l in b.layers:
                lines.append("  %-16s %-28s -> %s" % (l.name, l.describe(), l.out_shape))
        lines.append("head: %d inputs" % self.head_in)
        for l in self.head:
            lines.append("  %-16s %-28s -> %s" % (l.name, l.describe(), l.out_shape))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A model.yaml mapping with every default explicit; parse_spec() reads it back."""
        return {
            "format": self.format, "name": self.name, "version": self.version,
            "classes": list(self.classes), "symmetry": self.symmetry,
            "input": {"invert": self.input.invert, "background": _num(self.input.background),
                      "mean": _num(self.input.mean), "std": _num(self.input.std)},
            "branches": [{"name": b.name, "input": b.input.to_dict(),
                          "layers": [l.params() for l in b.layers]} for b in self.branches],
            "head": {"layers": [l.params() for l in self.head]},
            "tta": self.tta.to_dict(),
            **({"calibration": {"temperature": _num(self.temperature)}}
               if self.temperature != 1.0 else {}),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)


def _num(v):
    """Floats that are whole numbers print as ints (yaml "5" rather than "5.0")."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


# --------------------------------------------------------------------------
# parsing


class _Ctx:
    def __init__(self, filename: str):
        self.filename = filename

    def fail(self, line: int, where: str, msg: str):
        raise SpecError("%s:%d: %s: %s" % (self.filename, line, where, msg))

    def check_keys(self, m: _Map, allowed, where: str):
        for k in m:
            if k not in allowed:
                self.fail(m.key_lines.get(k, m.line), where,
                          "unknown key '%s' (allowed: %s)" % (k, ", ".join(allowed)))

    def require(self, m: _Map, key: str, where: str):
        if key not in m or m[key] is None:
            self.fail(m.line, where, "missing required key '%s'" % key)
        return m[key]

    def mapping(self, v, line: int, where: str) -> _Map:
        if not isinstance(v, _Map):
            self.fail(line, where, "expected a mapping, got %r" % (v,))
        return v

    def seq(self, v, line: int, where: str, lo: int, hi: int) -> _Seq:
        if not isinstance(v, _Seq):
            self.fail(line, where, "expected a list, got %r" % (v,))
        if not lo <= len(v) <= hi:
            self.fail(v.line, where, "expected %d..%d items, got %d" % (lo, hi, len(v)))
        return v

    # typed getters for optional keys of a mapping
    def int_(self, m: _Map, key: str, where: str, lo: int, hi: int, default=None, required=False):
        if key not in m:
            if required:
                self.fail(m.line, where, "missing required key '%s'" % key)
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(m.key_lines[key], where, "%s: expected an integer, got %r" % (key, v))
        if not lo <= v <= hi:
            self.fail(m.key_lines[key], where, "%s: expected %d..%d, got %d" % (key, lo, hi, v))
        return v

    def float_(self, m: _Map, key: str, where: str, lo: float, hi: float, default=None,
               required=False, positive=False):
        if key not in m:
            if required:
                self.fail(m.line, where, "missing required key '%s'" % key)
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(m.key_lines[key], where, "%s: expected a number, got %r" % (key, v))
        if not lo <= v <= hi:
            self.fail(m.key_lines[key], where, "%s: expected %g..%g, got %g" % (key, lo, hi, v))
        if positive and v <= 0:
            self.fail(m.key_lines[key], where, "%s: expected a number > 0, got %g" % (key, v))
        return float(v)

    def bool_(self, m: _Map, key: str, where: str, default: bool):
        if key not in m:
            return default
        v = m[key]
        if not isinstance(v, bool):
            self.fail(m.key_lines[key], where, "%s: expected true or false, got %r" % (key, v))
        return v

    def enum_(self, m: _Map, key: str, where: str, choices, default=None, required=False):
        if key not in m:
            if required:
                self.fail(m.line, where, "missing required key '%s'" % key)
            return default
        v = m[key]
        if v not in choices:
            self.fail(m.key_lines[key], where,
                      "%s: '%s' is not one of %s" % (key, v, ", ".join(choices)))
        return v

    def string_(self, m: _Map, key: str, where: str, pattern: str, what: str) -> str:
        if key not in m:
            self.fail(m.line, where, "missing required key '%s'" % key)
        # Raw scalar text: `version: 1` or `version: 1.10` keep their spelling.
        raw = m.raw.get(key)
        if raw is None or isinstance(m[key], (dict, list)):
            self.fail(m.key_lines[key], where, "%s: expected a string, got %r" % (key, m[key]))
        if not re.fullmatch(pattern, raw):
            self.fail(m.key_lines[key], where, "%s: '%s' must match %s" % (key, raw, what))
        return raw


_NAME_RE = r"[A-Za-z0-9._-]{1,63}"
_VERSION_RE = r"[A-Za-z0-9._+-]{1,63}"
_BRANCH_RE = r"[A-Za-z0-9_]{1,31}"
_LAYER_RE = r"[A-Za-z0-9_.]{1,63}"


def _parse_layer(c: _Ctx, item, line: int, list_name: str, index: int) -> Layer:
    where = "%s.layers[%d]" % (list_name, index)
    m = c.mapping(item, line, where)
    t = c.require(m, "type", where)
    if t not in LAYER_TYPES:
        c.fail(m.key_lines["type"], where,
               "unknown layer type '%s' (known types: %s)" % (t, ", ".join(LAYER_TYPES)))
    c.check_keys(m, ("type", "name") + LAYER_KEYS[t], where)
    if "name" in m:
        name = c.string_(m, "name", where, _LAYER_RE, "[A-Za-z0-9_.]{1,63}")
    else:
        name = "%s.%d" % (list_name, index)
    where = "layer %s (%s)" % (name, t)
    l = Layer(type=t, name=name, line=m.line)
    if t == "conv":
        l.filters = c.int_(m, "filters", where, 1, MAX_WIDTH, required=True)
        l.kernel = c.int_(m, "kernel", where, 1, MAX_KERNEL, required=True)
        l.stride = c.int_(m, "stride", where, 1, MAX_KERNEL, 1)
        l.pad = c.int_(m, "pad", where, 0, MAX_KERNEL, l.kernel // 2)
        l.activation = c.enum_(m, "activation", where, ACTIVATIONS, "leaky_relu")
        l.slope = c.float_(m, "slope", where, 0.0, 1.0, DEFAULT_SLOPE)
    elif t == "dense":
        l.units = c.int_(m, "units", where, 1, MAX_WIDTH, required=True)
        l.activation = c.enum_(m, "activation", where, ACTIVATIONS, "none")
        l.slope = c.float_(m, "slope", where, 0.0, 1.0, DEFAULT_SLOPE)
    elif t == "leaky_relu":
        l.slope = c.float_(m, "slope", where, 0.0, 1.0, DEFAULT_SLOPE)
    elif t == "maxpool":
        l.size = c.int_(m, "size", where, 1, MAX_KERNEL, 3)
        l.stride = c.int_(m, "stride", where, 1, MAX_KERNEL, 2)
    elif t == "cyclic_pool":
        l.mode = c.enum_(m, "mode", where, CPOOL_MODES, "mean")
    elif t == "maxout":
        l.pieces = c.int_(m, "pieces", where, 1, MAX_KERNEL, 2)
    elif t == "dropout":
        l.rate = c.float_(m, "rate", where, 0.0, 1.0, DEFAULT_DROPOUT)
        if l.rate >= 1.0:
            c.fail(m.key_lines["rate"], where, "expected 0 <= rate < 1, got %g" % l.rate)
    return l


def _parse_layer_list(c: _Ctx, parent: _Map, list_name: str, where: str) -> List[Layer]:
    if "layers" not in parent or parent["layers"] is None:
        return []
    seq = c.seq(parent["layers"], parent.key_lines["layers"], where, 0, MAX_LAYERS)
    return [_parse_layer(c, item, seq.item_lines[i], list_name, i) for i, item in enumerate(seq)]


def _parse_branch_input(c: _Ctx, m: _Map, where: str, symmetry: str) -> BranchInput:
    kind = c.enum_(m, "kind", where, ("image", "size_features"), required=True)
    if kind == "size_features":
        c.check_keys(m, ("kind", "features"), where)
        seq = c.seq(c.require(m, "features", where), m.key_lines.get("features", m.line), where, 1,
                    MAX_FEATURES)
        feats = []
        for i, f in enumerate(seq):
            if f not in FEATURES:
                c.fail(seq.item_lines[i], where,
                       "features[%d]: '%s' is not one of %s" % (i, f, ", ".join(FEATURES)))
            if f in feats:
                c.fail(seq.item_lines[i], where, "duplicate feature '%s'" % f)
            if symmetry != "none" and f in NOT_ROTATION_INVARIANT:
                c.fail(seq.item_lines[i], where,
                       "features[%d]: '%s' is not invariant under symmetry %s (a quarter turn "
                       "swaps width and height); use log_long, log_short, log_area or "
                       "log_elongation" % (i, f, symmetry))
            feats.append(f)
        return BranchInput(kind=kind, features=feats)
    rescale = c.enum_(m, "rescale", where, ("fit", "fixed"), "fit")
    c.check_keys(m, ("kind", "size", "rescale", "fit_size" if rescale == "fit" else "factor"),
                 where)
    size = c.int_(m, "size", where, 1, MAX_IMAGE_SIZE, required=True)
    bi = BranchInput(kind=kind, size=size, rescale=rescale)
    if rescale == "fit":
        bi.fit_size = c.float_(m, "fit_size", where, -1e5, 1e5, float(size), positive=True)
    else:
        bi.factor = c.float_(m, "factor", where, -1e4, 1e4, required=True, positive=True)
    return bi


def _parse_range(c: _Ctx, m: _Map, key: str, lo: float, hi: float, default):
    if key not in m:
        return list(default)
    seq = c.seq(m[key], m.key_lines[key], "tta", 2, 2)
    vals = []
    for i, v in enumerate(seq):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            c.fail(seq.item_lines[i], "tta", "%s[%d]: expected a number in %g..%g, got %r" % (
                key, i, lo, hi, v))
        vals.append(float(v))
    if vals[0] > vals[1]:
        c.fail(seq.line, "tta", "%s: range [%g, %g] has min > max" % (key, vals[0], vals[1]))
    return vals


def _parse_tta(c: _Ctx, root: _Map, symmetry: str) -> TTASpec:
    t = TTASpec()
    if "tta" not in root or root["tta"] is None:
        return t
    m = c.mapping(root["tta"], root.key_lines["tta"], "tta")
    c.check_keys(m, ("count", "zoom", "rotation", "shear", "translate", "stretch", "flip"), "tta")
    t.count = c.int_(m, "count", "tta", 0, MAX_TTA, 0)
    t.zoom = _parse_range(c, m, "zoom", 0, 100, t.zoom)
    if t.zoom[0] <= 0:
        c.fail(m.key_lines["zoom"], "tta", "zoom must be > 0, got %g" % t.zoom[0])
    t.rotation = _parse_range(c, m, "rotation", -360, 360, t.rotation)
    t.shear = _parse_range(c, m, "shear", -80, 80, t.shear)
    t.translate = _parse_range(c, m, "translate", -1024, 1024, t.translate)
    t.stretch = c.float_(m, "stretch", "tta", 1.0, 100.0, t.stretch)
    t.flip = c.bool_(m, "flip", "tta", False)
    if t.flip and symmetry == "c4":
        c.fail(m.key_lines["flip"], "tta",
               "flip is allowed only with symmetry none or d4 (the model's symmetry is c4)")
    return t


def parse_spec(text: str, filename: str = "<model.yaml>") -> ModelSpec:
    """Parses and validates a model.yaml text; infers every layer's shapes."""
    c = _Ctx(filename)
    loader = _Loader(text)
    loader.name = filename
    try:
        root = loader.get_single_data()
    except yaml.YAMLError as e:
        raise SpecError("%s: invalid YAML: %s" % (filename, e)) from None
    finally:
        loader.dispose()
    root = c.mapping(root, 1, "model")
    # precision (the engine's bf16 parity record), serving (batching), segmentation (the frame
    # path), thresholds and lineage (the answers' outputs): the daemon's (FORMAT.md), nothing the
    # network or its training reads; the C loader checks them.
    c.check_keys(root, ("format", "name", "version", "classes", "symmetry", "input", "branches",
                        "head", "tta", "calibration", "precision", "serving", "segmentation",
                        "thresholds", "lineage"), "model")
    fmt = c.int_(root, "format", "format", 0, 2**31 - 1, required=True)
    if fmt != 1:
        c.fail(root.key_lines["format"], "format", "%d is not supported (only format 1)" % fmt)
    name = c.string_(root, "name", "name", _NAME_RE, "[A-Za-z0-9._-]{1,63}")
    version = c.string_(root, "version", "version", _VERSION_RE, "[A-Za-z0-9._+-]{1,63}")

    classes_seq = c.seq(c.require(root, "classes", "classes"), root.key_lines.get("classes", 1),
                        "classes", 2, MAX_CLASSES)
    classes, seen = [], {}
    for i, raw in enumerate(classes_seq.raw):
        if raw is None or not 1 <= len(raw) <= MAX_LABEL_LEN:
            c.fail(classes_seq.item_lines[i], "classes[%d]" % i,
                   "expected a label of 1..%d characters, got %r" % (MAX_LABEL_LEN,
                                                                     classes_seq[i]))
        if raw in seen:
            c.fail(classes_seq.item_lines[i], "classes[%d]" % i,
                   "duplicate class label '%s' (also classes[%d])" % (raw, seen[raw]))
        seen[raw] = i
        classes.append(raw)

    symmetry = c.enum_(root, "symmetry", "symmetry", tuple(SYMMETRY_VIEWS), "none")

    im = c.mapping(c.require(root, "input", "input"), root.key_lines.get("input", 1), "input")
    c.check_keys(im, ("invert", "background", "mean", "std"), "input")
    inp = InputSpec(
        invert=c.bool_(im, "invert", "input", True),
        background=c.float_(im, "background", "input", 0.0, 255.0, 255.0),
        mean=c.float_(im, "mean", "input", -1e6, 1e6, 0.0),
        std=c.float_(im, "std", "input", -1e6, 1e6, required=True, positive=True))

    bseq = c.seq(c.require(root, "branches", "branches"), root.key_lines.get("branches", 1),
                 "branches", 1, MAX_BRANCHES)
    branches = []
    for i, item in enumerate(bseq):
        where = "branches[%d]" % i
        bm = c.mapping(item, bseq.item_lines[i], where)
        c.check_keys(bm, ("name", "input", "layers"), where)
        bname = c.string_(bm, "name", where, _BRANCH_RE, "[A-Za-z0-9_]{1,31}")
        if any(b.name == bname for b in branches):
            c.fail(bm.key_lines["name"], where, "branch name '%s' is used twice" % bname)
        where = "branch %s" % bname
        bin_ = _parse_branch_input(c, c.mapping(c.require(bm, "input", where),
                                                bm.key_lines.get("input", bm.line), where + " input"),
                                   where + " input", symmetry)
        layers = _parse_layer_list(c, bm, bname, where)
        branches.append(Branch(name=bname, input=bin_, layers=layers, line=bm.line))

    hm = c.mapping(c.require(root, "head", "head"), root.key_lines.get("head", 1), "head")
    c.check_keys(hm, ("layers",), "head")
    c.require(hm, "layers", "head")
    head = _parse_layer_list(c, hm, "head", "head")

    temperature = 1.0
    if "calibration" in root:
        cm = c.mapping(root["calibration"], root.key_lines["calibration"], "calibration")
        c.check_keys(cm, ("temperature",), "calibration")
        temperature = c.float_(cm, "temperature", "calibration", 0.05, 20.0, 1.0)
    spec = ModelSpec(format=fmt, name=name, version=version, classes=classes, symmetry=symmetry,
                     input=inp, branches=branches, head=head, tta=_parse_tta(c, root, symmetry),
                     temperature=temperature,
                     head_line=hm.line, filename=filename, source_text=text)
    infer_shapes(spec)
    return spec


def load_spec(path: str) -> ModelSpec:
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    return parse_spec(text, path)


# --------------------------------------------------------------------------
# shape inference (mirrors models/pd_model.c)


def _window_out(n: int, pad: int, k: int, s: int) -> int:
    span = n + 2 * pad - k
    return 0 if span < 0 else span // s + 1


def _infer_list(spec: ModelSpec, c: _Ctx, layers: List[Layer], shape: Shape, head: bool) -> Shape:
    slices = 0
    for i, l in enumerate(layers):
        where = "layer %s (%s)" % (l.name, l.describe())

        def fail(msg):
            c.fail(l.line, where, msg)

        def need_views():
            if spec.symmetry == "none":
                fail("needs symmetry c4 or d4 (the model's symmetry is none)")
            if shape.views <= 1:
                fail("needs several views (put cyclic_slice before it), got 1 view")

        l.in_shape = shape
        out = dataclasses.replace(shape)
        t = l.type
        if t == "cyclic_slice":
            if spec.symmetry == "none":
                fail("needs symmetry c4 or d4 (the model's symmetry is none)")
            slices += 1
            if slices > 1:
                fail("cyclic_slice may appear only once per layer list")
            if shape.views != 1:
                fail("needs a 1-view input, got %d views" % shape.views)
            if shape.h != shape.w:
                fail("needs a square input, got %dx%d" % (shape.h, shape.w))
            out.views = spec.views
        elif t == "conv":
            out.h = _window_out(shape.h, l.pad, l.kernel, l.stride)
            out.w = _window_out(shape.w, l.pad, l.kernel, l.stride)
            if out.h < 1 or out.w < 1:
                fail("input %dx%d leaves no pixels" % (shape.h, shape.w))
            out.c = l.filters
        elif t == "maxpool":
            out.h = _window_out(shape.h, 0, l.size, l.stride)
            out.w = _window_out(shape.w, 0, l.size, l.stride)
            if out.h < 1 or out.w < 1:
                fail("input %dx%d leaves no pixels" % (shape.h, shape.w))
        elif t == "cyclic_roll":
            need_views()
            if shape.h != shape.w:
                fail("a spatial roll needs a square map, got %dx%d" % (shape.h, shape.w))
            if shape.c * shape.views > MAX_CHANNELS:
                fail("%d views x %d channels exceeds %d channels" % (shape.views, shape.c,
                                                                     MAX_CHANNELS))
            out.c = shape.c * shape.views
        elif t == "cyclic_pool":
            need_views()
            out.views = 1
        elif t == "dense":
            out = Shape(shape.views, 1, 1, l.units)
        elif t == "global_avg_pool":
            out = Shape(shape.views, 1, 1, shape.c)
        elif t == "maxout":
            if shape.c % l.pieces:
                fail("input has %d channels, not divisible by %d pieces" % (shape.c, l.pieces))
            out.c = shape.c // l.pieces
        elif t == "softmax":
            if not (head and i == len(layers) - 1):
                fail("softmax is allowed only as the last head layer")
        if out.numel() > MAX_ACTIVATION:
            fail("output %s is more than %d floats" % (out, MAX_ACTIVATION))
        l.out_shape = out
        shape = out
    return shape


def infer_shapes(spec: ModelSpec) -> None:
    """Sets in_shape/out_shape of every branch and layer; raises SpecError on a bad network."""
    c = _Ctx(spec.filename)
    seen = {}
    for l in spec.all_layers():
        if l.name in seen:
            c.fail(l.line, "layer %s (%s)" % (l.name, l.describe()),
                   "layer name '%s' is already used on line %d" % (l.name, seen[l.name]))
        seen[l.name] = l.line
    for b in spec.branches:
        if b.input.kind == "image":
            b.in_shape = Shape(1, b.input.size, b.input.size, 1)
        else:
            b.in_shape = Shape(1, 1, 1, len(b.input.features))
        b.out_shape = _infer_list(spec, c, b.layers, b.in_shape, False)
        if not (b.out_shape.views == 1 and b.out_shape.flat):
            c.fail(b.line, "branch %s" % b.name,
                   "output is %s; it must be one flat view (end the branch with cyclic_pool, "
                   "dense or global_avg_pool)" % b.out_shape)
    out = _infer_list(spec, c, spec.head, Shape(1, 1, 1, spec.head_in), True)
    if len(spec.head) < 2 or spec.head[-1].type != "softmax":
        c.fail(spec.head_line, "head", "the layers must end with a layer giving %d units (one per "
               "class) and then softmax" % spec.n_classes)
    if not (out.views == 1 and out.flat and out.c == spec.n_classes):
        prev = spec.head[-2]
        c.fail(prev.line, "layer %s (%s)" % (prev.name, prev.describe()),
               "gives %s before softmax but the model has %d classes" % (out, spec.n_classes))
