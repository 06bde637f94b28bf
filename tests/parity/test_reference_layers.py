#!/usr/bin/python3
"""Unit tests of the PyTorch reference (train/planktonnet) on hand-computable cases.

The C engine is tested against this reference (test_engine_parity.py), so the
reference itself is pinned here to FORMAT.md's conventions: the rot90/flip
views, the D4 group product, the roll's block order, cyclic pooling, maxout
grouping, the dense C,H,W flatten order, the spec's defaults and shapes, the
warp's geometry, safetensors round trips, and exact invariance of whole c4/d4
networks. Plain script: prints one line per failed check and a summary line,
exits 1 on failure.
"""

import math
import os
import sys
import tempfile
import traceback

ROOT = os.environ.get("PLANKTON_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from planktonnet import PlanktonNet, load_model, load_spec, parse_spec, write_model  # noqa: E402
from planktonnet import layers as L  # noqa: E402
from planktonnet import safetensors_io  # noqa: E402
from planktonnet.spec import SpecError  # noqa: E402
from planktonnet.warp import Augment, sample_bilinear, size_features, warp_branch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
torch.manual_seed(0)

CHECKS = 0
FAILURES = []


def check(cond, msg):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILURES.append(msg)
        print("FAIL: " + msg)


def close(a, b, tol=0.0):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool((a - b).abs().max() <= tol) if a.numel() else a.shape == b.shape


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------
# the group and the views

def np_rot90(m):
    """FORMAT.md: out[y][x] = in[x][n-1-y] (written out, independent of torch)."""
    n = m.shape[0]
    return np.array([[m[x][n - 1 - y] for x in range(n)] for y in range(n)])


def np_view(m, v):
    f, r = divmod(v, 4)
    if f:
        m = m[:, ::-1]
    for _ in range(r):
        m = np_rot90(m)
    return np.array(m)


def test_views():
    x = t([[1, 2], [3, 4]])
    want = {0: [[1, 2], [3, 4]], 1: [[2, 4], [1, 3]], 2: [[4, 3], [2, 1]], 3: [[3, 1], [4, 2]],
            4: [[2, 1], [4, 3]], 5: [[1, 3], [2, 4]], 6: [[3, 4], [1, 2]], 7: [[4, 2], [3, 1]]}
    for v, w in want.items():
        check(close(L.d4_apply(x, v), t(w)), "view %d of [[1,2],[3,4]] is %s, expected %s" % (
            v, L.d4_apply(x, v).tolist(), w))
    m = np.arange(9.0).reshape(3, 3)
    for v in range(8):
        check(close(L.d4_apply(torch.from_numpy(m), v), np_view(m, v)),
              "view %d of a 3x3 map differs from out[y][x] = in[x][n-1-y] (flip first)" % v)


def test_group():
    V = 8
    for a in range(V):
        check(L.d4_mul(0, a) == a and L.d4_mul(a, 0) == a, "0 is not the identity for %d" % a)
        check(L.d4_mul(a, L.d4_inv(a)) == 0 and L.d4_mul(L.d4_inv(a), a) == 0,
              "d4_inv(%d) = %d is not an inverse" % (a, L.d4_inv(a)))
        row = sorted(L.d4_mul(a, b) for b in range(V))
        check(row == list(range(V)), "row %d of the product table is not a permutation: %s" % (a, row))
        for b in range(V):
            ab = L.d4_mul(a, b)
            check(0 <= ab < V, "d4_mul(%d, %d) = %d is outside the group" % (a, b, ab))
            if a < 4 and b < 4:
                check(ab < 4, "C4 is not closed: d4_mul(%d, %d) = %d" % (a, b, ab))
                check(ab == (a + b) % 4, "C4 product %d*%d should be %d" % (a, b, (a + b) % 4))
            for c in range(V):
                check(L.d4_mul(L.d4_mul(a, b), c) == L.d4_mul(a, L.d4_mul(b, c)),
                      "product not associative at (%d, %d, %d)" % (a, b, c))
    check(L.d4_mul(4, 1) == 7 and L.d4_mul(1, 4) == 5,
          "F R should be R^3 F (7) and R F should be 5, got %d and %d" % (L.d4_mul(4, 1),
                                                                        L.d4_mul(1, 4)))
    # The product is composition: T_a T_b applies T_b first.
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    for a in range(V):
        check(close(L.d4_apply(L.d4_apply(x, a), L.d4_inv(a)), x),
              "T_inv(%d) does not undo T_%d" % (a, a))
        for b in range(V):
            check(close(L.d4_apply(L.d4_apply(x, b), a), L.d4_apply(x, L.d4_mul(a, b))),
                  "T_%d(T_%d(x)) != T_(d4_mul(%d, %d))(x)" % (a, b, a, b))


def test_slice():
    x = torch.stack([t([[1, 2], [3, 4]]), t([[5, 6], [7, 8]])])[:, None]   # [2, 1, 2, 2]
    for V in (4, 8):
        y = L.CyclicSlice(V)(x)
        check(tuple(y.shape) == (2 * V, 1, 2, 2), "slice(%d) shape %s" % (V, tuple(y.shape)))
        for n in range(2):
            for v in range(V):
                check(close(y[n * V + v, 0], L.d4_apply(x[n, 0], v)),
                      "slice(%d): row %d is not view %d of image %d (views must be adjacent)"
                      % (V, n * V + v, v, n))
    y = L.CyclicSlice(4)(x)
    check(close(y[1, 0], t([[2, 4], [1, 3]])) and close(y[4 + 3, 0], t([[7, 5], [8, 6]])),
          "slice: view 1 of image 0 / view 3 of image 1 have wrong values")


# ---------------------------------------------------------------------------
# the roll

def test_roll_c4_by_hand():
    # one image, 4 views of a 2x2 map with 1 channel: F_v = [[10v+1, 10v+2], [10v+3, 10v+4]]
    F = torch.stack([t([[10 * v + 1, 10 * v + 2], [10 * v + 3, 10 * v + 4]]) for v in range(4)])
    y = L.CyclicRoll(4)(F[:, None])
    check(tuple(y.shape) == (4, 4, 2, 2), "c4 roll shape %s, expected (4, 4, 2, 2)" % (tuple(y.shape),))
    # view 0: F0, R^-1 F1, R^-2 F2, R^-3 F3
    want0 = [[[1, 2], [3, 4]], [[13, 11], [14, 12]], [[24, 23], [22, 21]], [[32, 34], [31, 33]]]
    check(close(y[0], t(want0)), "c4 roll view 0 = %s, expected %s" % (y[0].tolist(), want0))
    # view 1: F1, R^-1 F2, R^-2 F3, R^-3 F0
    want1 = [[[11, 12], [13, 14]], [[23, 21], [24, 22]], [[34, 33], [32, 31]], [[2, 4], [1, 3]]]
    check(close(y[1], t(want1)), "c4 roll view 1 = %s, expected %s" % (y[1].tolist(), want1))
    # view 3 block 2 is R^-2 F_(3+2 mod 4) = R^2 F1
    check(close(y[3, 2], t([[14, 13], [12, 11]])), "c4 roll view 3 block 2 should be R^2 F1")


def test_roll_flat_by_hand():
    F = torch.stack([t([10 * v + 1, 10 * v + 2]) for v in range(4)])     # [4 views, 2]
    y = L.CyclicRoll(4)(F)
    check(close(y[1], t([11, 12, 21, 22, 31, 32, 1, 2])),
          "c4 dense roll view 1 = %s, expected F1 F2 F3 F0" % y[1].tolist())
    F8 = torch.stack([t([v]) for v in range(8)])                         # feature = view index
    y8 = L.CyclicRoll(8)(F8)
    for i in range(8):
        want = [L.d4_mul(s, i) for s in range(8)]
        check(close(y8[i], t(want)), "d4 dense roll view %d = %s, expected views %s" % (
            i, y8[i].tolist(), want))
    # hand values: view 1 (R), block 4 (F) is view F R = R^3 F = 7
    check(int(y8[1, 4]) == 7, "d4 dense roll: view 1 block 4 should be view 7")


def np_roll(x, V):
    """Independent roll: x [V, C, n, n] numpy -> [V, V*C, n, n] from FORMAT.md's words."""
    out = []
    for i in range(V):
        blocks = []
        for s in range(V):
            j = L.d4_mul(s, i)
            sinv = L.d4_inv(s)
            blocks.append(np.stack([np_view(x[j, c], sinv) for c in range(x.shape[1])]))
        out.append(np.concatenate(blocks))
    return np.stack(out)


def test_roll_vs_numpy():
    for V in (4, 8):
        x = np.random.default_rng(V).normal(size=(2 * V, 3, 3, 3))
        y = L.CyclicRoll(V)(torch.from_numpy(x)).numpy()
        for n in range(2):
            want = np_roll(x[n * V:(n + 1) * V], V)
            check(np.array_equal(y[n * V:(n + 1) * V], want),
                  "roll(%d) of image %d differs from the written-out definition" % (V, n))


# ---------------------------------------------------------------------------
# pooling, maxout, dense, maxpool

def test_cyclic_pool():
    # 2 images x 4 views, 1 channel, 1x1; image 0 has views 1, -2, 3, -4
    x = t([1, -2, 3, -4, 0, 0, 0, 0]).reshape(8, 1, 1, 1)
    for mode, want in (("mean", -0.5), ("rms", math.sqrt(7.5)), ("max", 3.0)):
        y = L.CyclicPool(4, mode)(x)
        check(tuple(y.shape) == (2, 1, 1, 1), "cyclic_pool %s shape %s" % (mode, tuple(y.shape)))
        check(abs(float(y[0]) - want) < 1e-12 and float(y[1]) == 0.0,
              "cyclic_pool %s of [1, -2, 3, -4] = %g, expected %g" % (mode, float(y[0]), want))
    x = torch.arange(16, dtype=torch.float64).reshape(8, 2)   # 1 image x 8 views x 2 features
    check(close(L.CyclicPool(8, "max")(x), t([[14, 15]])), "d4 cyclic_pool max over 8 views")


def test_maxout():
    x = t([[1, 5, 2, 0, -1, -3]])
    check(close(L.Maxout(2)(x), t([[5, 2, -1]])), "maxout 2 of [1,5,2,0,-1,-3] should be [5,2,-1] "
          "(consecutive groups), got %s" % L.Maxout(2)(x).tolist())
    check(close(L.Maxout(3)(x), t([[5, 0]])), "maxout 3 should be [5, 0]")
    m = x.reshape(1, 6, 1, 1).repeat(1, 1, 2, 2)
    check(close(L.Maxout(2)(m)[0, :, 1, 0], t([5, 2, -1])), "maxout on a map groups channels")


def test_dense_flatten():
    C, H, W = 2, 2, 3
    x = torch.arange(C * H * W, dtype=torch.float64).reshape(1, C, H, W) * 10 + 1
    d = L.Dense(C * H * W, C * H * W).double()
    with torch.no_grad():
        d.weight.zero_()
        d.bias.zero_()
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    d.weight[(c * H + y) * W + xx, (c * H + y) * W + xx] = 1.0
    out = d(x)[0].reshape(C, H, W)
    check(close(out, x[0]), "dense input index must be c*H*W + y*W + x (C,H,W flatten)")
    with torch.no_grad():
        d.weight.zero_()
        d.weight[0, (1 * H + 0) * W + 2] = 1.0       # picks channel 1, row 0, column 2
    check(float(d(x)[0, 0]) == float(x[0, 1, 0, 2]), "dense weight column for (c=1, y=0, x=2)")


def test_maxpool_conv_shapes():
    x = torch.arange(49, dtype=torch.float64).reshape(1, 1, 7, 7)
    y = L.MaxPool(2, 2)(x)
    check(tuple(y.shape) == (1, 1, 3, 3) and float(y[0, 0, 2, 2]) == 40.0,
          "maxpool 2/2 on 7x7: floor to 3x3, last window max 40, got %s" % (y[0, 0].tolist(),))
    y = L.MaxPool(3, 2)(x)
    check(tuple(y.shape) == (1, 1, 3, 3) and float(y[0, 0, 0, 0]) == 16.0, "maxpool 3/2 on 7x7")
    c = L.Conv(1, 2, 3, stride=2, pad=0).double()
    check(tuple(c(x).shape) == (1, 2, 3, 3), "conv 3/2 pad 0 on 7x7 gives 3x3")
    c = L.Conv(1, 2, 1, activation="none").double()
    with torch.no_grad():
        c.weight.fill_(-2.0)
        c.bias.fill_(0.0)
    check(close(c(x)[0, 0], -2 * x[0, 0]), "1x1 linear conv")
    c.activation, c.slope = "leaky_relu", 0.1
    check(close(c(x)[0, 0], -0.2 * x[0, 0], 1e-12), "conv fused leaky slope 0.1")
    check(close(L.LeakyReLU(0.0)(t([-1, 2])), t([0, 2])), "leaky_relu slope 0 is ReLU")
    check(close(L.GlobalAvgPool()(x), t([[24.0]])), "global_avg_pool of 0..48 is 24")


# ---------------------------------------------------------------------------
# spec: defaults, shapes, errors

MINI = """\
format: 1
name: mini
version: 2
classes: [a, b, c]
symmetry: %s
input: {std: 0.5}
branches:
  - name: img
    input: {kind: image, size: 9}
    layers:
      - {type: cyclic_slice}
      - {type: conv, filters: 4, kernel: 3}
      - {type: maxpool}
      - {type: cyclic_roll}
      - {type: dropout}
      - {type: dense, units: 6}
      - {type: cyclic_pool}
  - name: sz
    input: {kind: size_features, features: [log_elongation]}
head:
  layers:
    - {type: dense, units: 3}
    - {type: softmax}
"""


def expect_error(text, fragment, what):
    try:
        parse_spec(text, "bad.yaml")
    except SpecError as e:
        check(fragment in str(e) and str(e).startswith("bad.yaml:"),
              "%s: error '%s' should contain '%s' and start with 'bad.yaml:<line>'" % (what, e,
                                                                                     fragment))
        return
    check(False, "%s: no SpecError" % what)


def test_spec():
    s = parse_spec(MINI % "c4", "mini.yaml")
    check(s.version == "2" and s.views == 4 and s.input.mean == 0.0 and s.input.invert
          and s.input.background == 255.0, "top-level defaults")
    img = s.branches[0]
    check(img.input.rescale == "fit" and img.input.fit_size == 9.0, "fit_size defaults to size")
    conv, pool, roll, drop, dense, cpool = img.layers[1:]
    check(conv.stride == 1 and conv.pad == 1 and conv.activation == "leaky_relu"
          and conv.slope == 0.01, "conv defaults")
    check(pool.size == 3 and pool.stride == 2 and cpool.mode == "mean" and drop.rate == 0.5
          and dense.activation == "none", "maxpool/cyclic_pool/dropout/dense defaults")
    check(conv.name == "img.1" and s.head[0].name == "head.0", "default layer names")
    check(str(pool.out_shape) == "4 views of 4x4x4" and roll.out_shape.c == 16
          and tuple(s.weight_shapes()["img.5.weight"]) == (6, 256), "shapes: %s, %s" % (
              pool.out_shape, s.weight_shapes()))
    check(s.head_in == 7 and s.param_count() == 4 * 9 + 4 + 6 * 256 + 6 + 3 * 7 + 3,
          "head_in / param count")
    s2 = parse_spec(s.to_yaml(), "again.yaml")
    check(s2.to_dict() == s.to_dict(), "to_yaml() does not read back the same spec")
    expect_error(MINI % "none", "needs symmetry", "cyclic layers with symmetry none")
    expect_error(MINI.replace("{type: maxpool}", "{type: maxpool, sise: 2}") % "c4",
                 "unknown key 'sise'", "unknown layer key")
    expect_error(MINI.replace("    - {type: softmax}\n", "") % "c4", "softmax", "missing softmax")
    expect_error(MINI.replace("units: 3", "units: 4") % "c4", "3 classes", "wrong class count")
    expect_error(MINI.replace("      - {type: cyclic_pool}\n", "") % "c4", "one flat view",
                 "branch not pooled")
    expect_error(MINI.replace("classes: [a, b, c]", "classes: [a, b, a]") % "c4", "duplicate",
                 "duplicate class")
    expect_error((MINI % "c4") + "tta: {flip: true}\n", "flip is allowed only", "flip with c4")
    expect_error(MINI.replace("{type: dropout}", "{type: dropout, rate: 1}") % "c4", "rate",
                 "dropout rate 1")
    try:
        parse_spec(MINI.replace("{type: maxpool}", "{type: maxpool, size: 20}") % "c4", "bad.yaml")
        check(False, "maxpool larger than the map should fail")
    except SpecError as e:
        check(":13:" in str(e) and "leaves no pixels" in str(e),
              "error should name line 13 of the layer: %s" % e)


# ---------------------------------------------------------------------------
# net: names, equivariance

def spec_path(name):
    return os.path.join(ROOT, "tests", "models", name)


def pooled_views(net, inputs):
    """Inputs of every CyclicPool (the per-view features) and the probabilities."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach()))
             for m in net.modules() if isinstance(m, L.CyclicPool)]
    try:
        out = net(inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def test_equivariance():
    for name, V in (("parity_c4.yaml", 4), ("parity_d4.yaml", 8)):
        spec = load_spec(spec_path(name))
        net = PlanktonNet(spec).double().eval()
        with torch.no_grad():   # larger random weights than the default, so outputs are not flat
            for p in net.parameters():
                p.normal_(0.0, 1.0 / math.sqrt(max(1, p[0].numel() if p.dim() > 1 else 4)))
        n = 3
        inputs = [torch.randn(*s, dtype=torch.float64) for s in net.input_shapes(n)]
        with torch.no_grad():
            base_views, base = pooled_views(net, inputs)
            check(float(base.max() - base.min()) > 1e-3, "%s: outputs are flat" % name)
            for u in range(1, 8):
                moved = [L.d4_apply(x, u) if x.dim() == 4 else x for x in inputs]
                views, out = pooled_views(net, moved)
                diff = float((out - base).abs().max())
                if u < V:
                    check(diff < 1e-12, "%s: T_%d on the input changes the output by %g" % (
                        name, u, diff))
                    for k, (a, b) in enumerate(zip(views, base_views)):
                        perm = [m * V + L.d4_mul(i, u) for m in range(n) for i in range(V)]
                        check(close(a, b[perm], 1e-12),
                              "%s: T_%d on the input should permute the views i -> i o u "
                              "before cyclic pool #%d" % (name, u, k))
                else:
                    # a C4 net is not invariant to flips: the test above is not vacuous
                    check(diff > 1e-6, "%s: a flip (T_%d) leaves the c4 net unchanged" % (name, u))


def test_state_dict_and_export():
    spec = load_spec(spec_path("parity_c4.yaml"))
    net = PlanktonNet(spec)
    keys = list(net.state_dict().keys())
    check(keys == list(spec.weight_shapes().keys()),
          "state_dict keys must be the FORMAT.md names in layer order, got %s" % keys[:6])
    check("a_fc1.weight" in keys and "logits.bias" in keys and "a.1.weight" in keys, "explicit names")
    # nested in a training wrapper, keys get the wrapper's prefix
    wrapper = torch.nn.Module()
    wrapper.net = net
    check(all(k.startswith("net.") for k in wrapper.state_dict()) and
          "net.a_fc1.weight" in wrapper.state_dict(), "nested state_dict keys")
    other = PlanktonNet(spec)
    other.load_state_dict(net.state_dict())
    check(all(torch.equal(a, b) for a, b in zip(other.parameters(), net.parameters())),
          "load_state_dict(state_dict()) round trip")
    wrapper2 = torch.nn.Module()
    wrapper2.net = PlanktonNet(spec)
    wrapper2.load_state_dict(wrapper.state_dict())
    check(torch.equal(wrapper2.net.head_layers[2].weight, net.head_layers[2].weight),
          "nested load_state_dict round trip")
    try:
        other.load_state_dict({**net.state_dict(), "bogus.weight": torch.zeros(1)})
        check(False, "an unknown tensor name must fail load_state_dict")
    except RuntimeError as e:
        check("bogus.weight" in str(e), "unexpected key should be named: %s" % e)
    with tempfile.TemporaryDirectory() as d:
        for dtype, tol in (("f32", 0.0), ("f16", 1e-3)):
            out = os.path.join(d, dtype)
            write_model(out, spec, net, dtype=dtype)
            tensors, meta = safetensors_io.read(os.path.join(out, "weights.safetensors"))
            check(list(tensors) == keys and meta.get("model") == "parity-c4",
                  "%s file: tensor order / metadata" % dtype)
            spec2, net2 = load_model(out)
            ok = all(float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))
                     for a, b in zip(net2.state_dict().values(), net.state_dict().values()))
            check(ok, "%s export/load round trip" % dtype)
            with open(os.path.join(out, "weights.safetensors"), "rb") as f:
                blob = f.read()
            try:
                safetensors_io.loads(blob[:-3], "cut.safetensors")
                check(False, "a truncated safetensors file must fail")
            except safetensors_io.SafetensorsError as e:
                check("cut.safetensors" in str(e), "error should name the file: %s" % e)
    x = np.array([[1.5, -2.25], [65504, 1e-3]], dtype=np.float32)
    back = safetensors_io.loads(safetensors_io.dumps({"x": x}, "F16"))[0]["x"]
    check(back.dtype == np.float32 and np.allclose(back, x, rtol=1e-3), "F16 widen on read")


# ---------------------------------------------------------------------------
# warp geometry

def test_warp():
    g = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    v = sample_bilinear(g, np.array([0.5, -0.5, 1.0, 5.0]), np.array([0.5, 0.0, 0.25, 0.0]), 255.0)
    check(np.allclose(v, [138.75, 127.5, 100 + 0.25 * 155, 255.0]),
          "bilinear samples %s" % v.tolist())
    spec = parse_spec(MINI % "c4")
    inp, ins = spec.branches[0].input, spec.input          # size 9, fit_size 9
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, size=(9, 9)).astype(np.uint8)
    base = warp_branch(inp, ins, crop)
    want = ((255.0 - crop) / 255.0 - 0.0) / 0.5
    check(np.allclose(base, want, atol=1e-6), "identity warp of a 9x9 crop into 9x9 (fit 9)")
    r90 = warp_branch(inp, ins, crop, Augment(rotation_deg=90))
    check(np.allclose(r90, np_rot90(base), atol=1e-5),
          "warp rotation +90 degrees should equal the rot90 view")
    fl = warp_branch(inp, ins, crop, Augment(flip=True))
    check(np.allclose(fl, base[:, ::-1], atol=1e-6), "warp flip mirrors columns")
    tr = warp_branch(inp, ins, crop, Augment(tx=1))
    check(np.allclose(tr[:, 1:], base[:, :-1], atol=1e-6), "warp tx=+1 moves content right")
    # fit scale: a 18x9 crop fitted into 9 samples every second column
    wide = rng.integers(0, 256, size=(9, 18)).astype(np.uint8)
    wb = warp_branch(inp, ins, wide).astype(np.float64)
    # q.x = 8.5 + 2 (i - 4) -> between columns 2i and 2i+1; q.y = 4 + 2 (j - 4) (rows 0, 2, .. 8)
    src = wide.astype(np.float64)
    rows = [2 * (j - 4) + 4 for j in range(9)]
    exp = np.full((9, 9), 255.0)
    for j, y in enumerate(rows):
        if 0 <= y < 9:
            exp[j] = 0.5 * (src[y, 0:18:2] + src[y, 1:18:2])
    exp = (255.0 - exp) / 255.0 / 0.5
    check(np.allclose(wb, exp, atol=1e-5), "fit warp of an 18x9 crop (scale 2, background rows)")
    f = size_features(spec.branches[1].input, 40, 20)
    check(np.allclose(f, [math.log(2.0)]), "log_elongation = ln(max/min) of 40x20")
    f = size_features(spec.branches[1].input, 20, 40)
    check(np.allclose(f, [math.log(2.0)]), "log_elongation = ln(max/min) of 20x40")


def test_training_mode():
    """The reference is also the training recipe's network: gradients must flow."""
    for V in (4, 8):
        x = torch.randn(2 * V, 1, 2, 2, dtype=torch.float64, requires_grad=True)
        check(torch.autograd.gradcheck(L.CyclicRoll(V), (x,)), "roll(%d) gradcheck" % V)
        f = torch.randn(2 * V, 2, dtype=torch.float64, requires_grad=True)
        check(torch.autograd.gradcheck(L.CyclicRoll(V), (f,)), "dense roll(%d) gradcheck" % V)
    spec = load_spec(spec_path("parity_d4.yaml"))
    net = PlanktonNet(spec).double().train()
    inputs = [torch.randn(*s, dtype=torch.float64) for s in net.input_shapes(4)]
    inputs[0][0].zero_()        # an all-zero crop: rms pooling of zeros must not give NaN grads
    logits = net(inputs, logits=True)
    check(tuple(logits.shape) == (4, spec.n_classes), "logits shape %s" % (tuple(logits.shape),))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    check(all(g is not None and bool(torch.isfinite(g).all()) for g in grads),
          "every parameter gets a finite gradient")
    check(sum(float(g.abs().sum()) for g in grads) > 0, "gradients are not all zero")
    net.eval()
    with torch.no_grad():
        check(close(net(inputs), net(inputs)), "eval mode is deterministic (dropout off)")


def test_memory_format():
    """channels_last (what bench/engine_torch.py may pick) computes the same network."""
    spec = load_spec(spec_path("parity_c4.yaml"))
    net = PlanktonNet(spec).double().eval()
    inputs = [torch.randn(*s, dtype=torch.float64) for s in net.input_shapes(3)]
    with torch.no_grad():
        base = net(inputs)
        net = net.to(memory_format=torch.channels_last)
        cl = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
              for x in inputs]
        check(close(net(cl), base, 1e-12), "channels_last changes the output")


def main():
    tests = [test_views, test_group, test_slice, test_roll_c4_by_hand, test_roll_flat_by_hand,
             test_roll_vs_numpy, test_cyclic_pool, test_maxout, test_dense_flatten,
             test_maxpool_conv_shapes, test_spec, test_equivariance, test_state_dict_and_export,
             test_warp, test_training_mode, test_memory_format]
    for fn in tests:
        try:
            fn()
        except Exception:  # an exception is a failure of that test, the rest still run
            FAILURES.append(fn.__name__ + " raised")
            print("FAIL: %s raised:\n%s" % (fn.__name__, traceback.format_exc()))
    print("reference_layers: %d checks in %d tests, %d failed" % (CHECKS, len(tests), len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
