#!/usr/bin/python3
"""Symmetry is a model property: a crop and its turns (and, for D4, its flips) get the same
answer, in the C engine and in the PyTorch reference.

Two random-weight models (tests/models/parity_c4.yaml and parity_d4.yaml: fit and fixed-factor
image branches and size features, all of them invariant under the group) and 12 real NDSB crops
(test_warp_parity.pick_images, with the most elongated ones, where width and height differ most).
For each crop, every element of the model's group (C4: the quarter turns; D4: those and the
mirror images) is applied to the decoded pixels and written as a PNG; then

- `planktond-model run --tta 1 --probs` on the originals and the transformed crops: every
  transformed crop's probabilities equal its original's to 1e-5;
- the reference network (train/planktonnet, float64) on train/planktonnet/warp.py's inputs for
  the same pixels: the same, to 1e-5;
- the answers are not trivial (the top-1 class is not the same for all crops), so the equality
  is not that of a constant;
- a size feature that a quarter turn changes (log_width, log_height, aspect) is refused under c4
  and d4 by the C loader (`planktond-model check`, exit 1, a message naming the feature and the
  symmetry) and by the Python spec parser, and accepted under symmetry none.

Exits 77 (skip) without the NDSB data, 1 on failure; prints the measured differences.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from test_warp_parity import (ROOT, data_dir_or_skip, make_models, pick_images, read_gray,  # noqa: E402
                              read_probs, run_tool, tool_path)
from planktonnet import load_model, parse_spec  # noqa: E402
from planktonnet.warp import preprocess_batch  # noqa: E402

TOL = 1e-5
N_CROPS = 12
MODELS = [("c4", "parity_c4.yaml", "f32", 41), ("d4", "parity_d4.yaml", "f32", 42)]

torch.set_num_threads(min(2, os.cpu_count() or 1))


def group(symmetry):
    """(name, function on a 2-d array) for every element of the model's group but the identity."""
    turns = [("rot%d" % (90 * k), lambda a, k=k: np.rot90(a, k)) for k in (1, 2, 3)]
    if symmetry == "c4":
        return turns
    flips = [("flip", np.fliplr)] + [
        ("flip+rot%d" % (90 * k), lambda a, k=k: np.rot90(np.fliplr(a), k)) for k in (1, 2, 3)]
    return turns + flips


def check_refusals(tool, tmp, weights, failures):
    """log_width & co. under c4/d4: refused by both loaders; under none: accepted. weights: a
    weights.safetensors of parity_c4.yaml (the C loader reads the weights file first)."""
    base = open(os.path.join(ROOT, "tests", "models", "parity_c4.yaml"), encoding="utf-8").read()
    want = "features: [log_long, log_short, log_area, log_elongation]"
    if want not in base:
        failures.append("parity_c4.yaml no longer has the line this test edits: %s" % want)
        return
    for feature in ("log_width", "log_height", "aspect"):
        for sym in ("c4", "d4"):
            text = base.replace(want, "features: [log_long, log_short, log_area, %s]" % feature).replace(
                "symmetry: c4", "symmetry: %s" % sym)
            d = os.path.join(tmp, "refuse-%s-%s" % (feature, sym))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "model.yaml"), "w", encoding="utf-8") as f:
                f.write(text)
            shutil.copy(weights, os.path.join(d, "weights.safetensors"))
            r = subprocess.run([tool, "check", d], capture_output=True, text=True)
            msg = r.stderr + r.stdout
            if r.returncode != 1 or feature not in msg or sym not in msg or "invariant" not in msg:
                failures.append("C loader on %s under %s: exit %d, %r (want exit 1 and a message "
                                "naming the feature, the symmetry and 'invariant')" % (
                                    feature, sym, r.returncode, msg.strip()[-300:]))
            try:
                parse_spec(text, "model.yaml")
                failures.append("Python spec parser accepted %s under %s" % (feature, sym))
            except ValueError as e:
                if feature not in str(e) or sym not in str(e):
                    failures.append("Python refusal of %s under %s does not name both: %s" % (
                        feature, sym, e))
    # symmetry none: the same features are fine (no cyclic layers in this small spec)
    none_text = """format: 1
name: sym-none
version: "1"
classes: [a, b]
symmetry: none
input: {invert: true, background: 255, mean: 0.0, std: 0.2}
branches:
  - name: img
    input: {kind: image, size: 9}
    layers:
      - {type: conv, filters: 2, kernel: 3}
      - {type: global_avg_pool}
  - name: size
    input: {kind: size_features, features: [log_width, log_height, aspect]}
    layers: []
head:
  layers:
    - {type: dense, units: 2}
    - {type: softmax}
"""
    try:
        parse_spec(none_text, "model.yaml")
    except ValueError as e:
        failures.append("Python spec parser refused log_width under symmetry none: %s" % e)


def main():
    data = data_dir_or_skip()
    tool = tool_path()
    images = pick_images(data)
    # the most elongated crops first (pick_images puts the extremes first), then spread classes
    paths = [p for p, _ in images[:N_CROPS]]
    failures = []
    with tempfile.TemporaryDirectory(prefix="pd-symmetry-") as tmp:
        models = make_models(tmp, MODELS)
        check_refusals(tool, tmp, os.path.join(models["c4"], "weights.safetensors"), failures)
        # The C decoder's pixels of the originals (so every transform starts from the same gray).
        gpath = os.path.join(tmp, "orig.gray")
        run_tool(tool, ["run", models["c4"], "--tta", "1", "--dump-gray", gpath] + paths)
        grays = read_gray(gpath)
        for label, mdir in models.items():
            spec, net = load_model(mdir, torch.float64)
            K = spec.n_classes
            elems = group(spec.symmetry)
            all_grays = list(grays)
            names = []
            for i, g in enumerate(grays):
                for name, fn in elems:
                    all_grays.append(np.ascontiguousarray(fn(g)))
                    names.append((i, name))
            files = []
            for k, g in enumerate(all_grays):
                f = os.path.join(tmp, "%s-%03d.png" % (label, k))
                Image.fromarray(g.astype(np.uint8), mode="L").save(f)
                files.append(f)
            ppath = os.path.join(tmp, label + ".probs")
            run_tool(tool, ["run", mdir, "--tta", "1", "--batch", "16", "--threads", "2",
                            "--probs", ppath] + files)
            c_probs = read_probs(ppath, len(files), K).astype(np.float64)
            with torch.no_grad():
                t_probs = net([torch.from_numpy(np.asarray(a, dtype=np.float64))
                               for a in preprocess_batch(spec, all_grays)]).numpy()
            n = len(grays)
            for what, probs in (("C engine", c_probs), ("PyTorch", t_probs)):
                worst, where = 0.0, None
                for j, (i, name) in enumerate(names):
                    d = float(np.abs(probs[n + j] - probs[i]).max())
                    if d > worst:
                        worst, where = d, (i, name)
                print("%-3s %-9s max |p(g x) - p(x)| = %.3g over %d crops x %d transforms%s" % (
                    label, what, worst, n, len(elems),
                    " (crop %d, %s)" % where if where else ""))
                if not worst <= TOL:
                    failures.append("%s %s: a transformed crop's probabilities differ by %.3g > %g "
                                    "(crop %s, %s)" % (label, what, worst, TOL, paths[where[0]],
                                                       where[1]))
            top1 = set(int(np.argmax(p)) for p in c_probs[:n])
            if len(top1) < 3:
                failures.append("%s: only %d distinct top-1 classes over %d crops: the check is "
                                "too weak" % (label, len(top1), n))
            gap = float(np.abs(c_probs[:n] - t_probs[:n]).max())
            print("%-3s C engine vs PyTorch on the originals: max |diff| = %.3g" % (label, gap))
            if not gap <= 1e-4:
                failures.append("%s: the C engine and PyTorch differ by %.3g" % (label, gap))
    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print("OK: answers invariant under the model's symmetry, non-invariant features refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
