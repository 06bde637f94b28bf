#!/usr/bin/python3
"""The export-friendly forms of train/planktonnet/layers.py equal the originals.

torch 1.13's ONNX exporter cannot write torch.rot90 nor CyclicRoll's in-place
copies into torch.empty, so bench/engine exports the reference network with
layers.set_export_friendly(net) (rot90_export: flips and transposes;
CyclicRoll.forward_export: concatenation). This test checks, exactly
(torch.equal, the same float operations in another order of indexing):

- rot90_export(x, r) == torch.rot90(x, r, dims=(-2, -1)) for r = -5..6, on
  square and non-square maps, contiguous and channels_last;
- d4_apply_export == d4_apply for all 8 elements of D4;
- CyclicSlice and CyclicRoll (C4 and D4, spatial and flat "dense roll",
  float32 and float64, channels_last input) give the same tensors in both
  forms;
- whole networks (tests/models/parity_c4.yaml and parity_d4.yaml, random
  weights: two image branches and size features) in eval mode give the
  same probabilities in both forms; in the export-friendly form torch.onnx
  exports them, and set_export_friendly(net, False) restores the original.

Exits 1 on failure.
"""

import io
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))

from planktonnet import layers as L  # noqa: E402
from planktonnet import PlanktonNet, load_spec  # noqa: E402

failures = []


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def check_net(name, gen):
    torch.manual_seed(5)
    spec = load_spec(os.path.join(ROOT, "tests", "models", name + ".yaml"))
    net = PlanktonNet(spec).eval()
    inputs = [torch.randn(*s, generator=gen) for s in net.input_shapes(3)]
    with torch.no_grad():
        ref = net(inputs)
        L.set_export_friendly(net)
        got = net(inputs)
    check(torch.equal(ref, got), "%s eval: both forms give the same probabilities "
          "(max |diff| %.3g)" % (name, (ref - got).abs().max().item()))
    buf = io.BytesIO()
    try:
        torch.onnx.export(net, (inputs, {}), buf, opset_version=13,
                          input_names=["in%d" % i for i in range(len(inputs))],
                          output_names=["probs"])
        exported = True
    except Exception as e:  # noqa: BLE001 (the message is the finding)
        print("export failed: %s" % e)
        exported = False
    check(exported and buf.tell() > 0, "torch.onnx.export of the export-friendly %s (%d bytes)"
          % (name, buf.tell()))
    net.eval()  # torch 1.13's exporter leaves the module in training mode
    L.set_export_friendly(net, False)
    check(not any(getattr(m, "export_friendly", False) for m in net.modules()),
          "%s: set_export_friendly(net, False) restores the original forms" % name)
    with torch.no_grad():
        check(torch.equal(ref, net(inputs)), "%s eval after export: same probabilities" % name)


def main():
    gen = torch.Generator().manual_seed(3)
    for shape in ((2, 3, 5, 5), (1, 2, 4, 7)):
        x = torch.randn(*shape, generator=gen)
        for fmt in ("contiguous", "channels_last"):
            xf = x.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else x
            same = all(torch.equal(L.rot90_export(xf, r), torch.rot90(xf, r, dims=(-2, -1)))
                       for r in range(-5, 7))
            check(same, "rot90_export == torch.rot90, %s %s, r = -5..6" % (shape, fmt))
    x = torch.randn(3, 2, 6, 6, generator=gen)
    check(all(torch.equal(L.d4_apply_export(x, v), L.d4_apply(x, v)) for v in range(8)),
          "d4_apply_export == d4_apply for the 8 elements of D4")

    for views in (4, 8):
        for dtype in (torch.float32, torch.float64):
            img = torch.randn(2, 3, 9, 9, generator=gen, dtype=dtype)
            sl = L.CyclicSlice(views)
            a = sl(img)
            L.set_export_friendly(sl)
            check(torch.equal(a, sl(img)), "CyclicSlice(%d) %s: both forms equal" % (views, dtype))
            roll = L.CyclicRoll(views)
            for name, x in (("spatial", torch.randn(2 * views, 3, 5, 5, generator=gen, dtype=dtype)),
                            ("spatial channels_last",
                             torch.randn(2 * views, 3, 5, 5, generator=gen, dtype=dtype)
                             .contiguous(memory_format=torch.channels_last)),
                            ("flat", torch.randn(2 * views, 7, generator=gen, dtype=dtype))):
                L.set_export_friendly(roll, False)
                a = roll(x)
                L.set_export_friendly(roll, True)
                b = roll(x)
                check(torch.equal(a, b) and a.shape == b.shape,
                      "CyclicRoll(%d) %s %s: both forms equal" % (views, name, dtype))

    for name in ("parity_c4", "parity_d4"):
        check_net(name, gen)

    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("export forms: all equal")


if __name__ == "__main__":
    main()
