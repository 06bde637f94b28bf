#!/usr/bin/python3
"""The C engine against the PyTorch reference, on real NDSB crops.

Four random-weight models: from tests/models parity_c4 and parity_d4 with F32
weights, parity_c4 with F16 weights (together they use every layer type), and
bench/models/seed_c4 (the deep seed-sized net, whose 3x3 convolutions run
through Winograd F(4x4, 3x3)),
24 real crops (see test_warp_parity.pick_images). For each model:

- `planktond-model run` at --batch 7 (so the last batch is partial), 24 and 1,
  with --threads 1 and 2, writes --probs and --dump-inputs;
- the reference network (train/planktonnet) in float64 on the C tool's own
  input slots gives the truth: max |C - torch| over all probabilities, and
  max |log C - log torch| over those >= 1e-30, within the model's TOLS entry
  (about 5x the measured figures);
- every run dumps the same inputs;
- `run --inputs FILE --count N` on inputs written by Python (warp.py on the C
  decoder's gray pixels) gives the truth for those inputs as well (the three
  small models: the warp does not depend on the network, and the seed-sized
  model's float64 truth costs 6 s each time);
- the probabilities are not trivial: max prob < 0.99 on most crops, and the
  top-1 class is not the same for all.

Exits 77 (skip) without the NDSB data, 1 on failure; prints the measured diffs.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from test_warp_parity import (data_dir_or_skip, make_models, pick_images, read_gray,  # noqa: E402
                              read_inputs, read_probs, run_tool, tool_path, write_inputs)
from planktonnet import load_model  # noqa: E402
from planktonnet.warp import preprocess_batch  # noqa: E402

RUNS = [(7, 1), (7, 2), (24, 2), (1, 1)]      # (batch, threads)
MODELS = [("c4-f32", "parity_c4.yaml", "f32", 31),
          ("d4-f32", "parity_d4.yaml", "f32", 32),
          ("c4-f16", "parity_c4.yaml", "f16", 33),
          # the seed-sized benchmark model: deep 3x3 stacks (Winograd), 95x95 and 47x47 maps
          ("seed-c4-f32", "../../bench/models/seed_c4.yaml", "f32", 34)]
# Per model: (max |C - torch|, max |log C - log torch| over probabilities >= 1e-30), about
# five times what was measured (2 cores of an AMD EPYC, Zen 4, AVX-512, 2026-12-02: c4-f32
# 1.8e-6 / 1.1e-5, d4-f32 8.0e-7 / 9.0e-6, c4-f16 1.8e-6 / 1.3e-5, seed-c4-f32 2.4e-5 /
# 2.1e-4: float32 error grows with depth, and Winograd adds its own).
# Models whose --inputs (python warp) check is left to the others.
NO_PY_INPUTS = {"seed-c4-f32"}
TOLS = {"c4-f32": (1e-5, 6e-5), "d4-f32": (5e-6, 5e-5), "c4-f16": (1e-5, 6e-5),
        "seed-c4-f32": (1.2e-4, 1e-3)}

torch.set_num_threads(min(2, os.cpu_count() or 1))


def log_diff(probs, ref):
    """max |log C - log torch| over the probabilities float32 holds as normal numbers: the
    small probabilities log loss depends on, which an absolute tolerance does not see."""
    mask = ref >= 1e-30
    c = np.log(np.maximum(probs.astype(np.float64), 1e-45))
    return float(np.abs(c - np.log(np.maximum(ref, 1e-300)))[mask].max())


def truth(net, inputs):
    """Reference probabilities in float64 on float32 input slots."""
    with torch.no_grad():
        return net([torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in inputs]).numpy()


def main():
    data = data_dir_or_skip()
    tool = tool_path()
    images = pick_images(data)
    paths = [p for p, _ in images]
    n = len(paths)
    failures = []
    summary = []
    with tempfile.TemporaryDirectory(prefix="pd-engine-parity-") as tmp:
        models = make_models(tmp, MODELS)
        for label, mdir in models.items():
            spec, net = load_model(mdir, torch.float64)
            prob_tol, log_tol = TOLS[label]
            K = spec.n_classes
            ref = None
            ref_inputs = None
            worst = worst_log = 0.0
            for batch, threads in RUNS:
                tag = "%s batch %d threads %d" % (label, batch, threads)
                ppath = os.path.join(tmp, "%s-%d-%d.probs" % (label, batch, threads))
                ipath = os.path.join(tmp, "%s-%d-%d.in" % (label, batch, threads))
                extra = ["--dump-gray", os.path.join(tmp, label + ".gray")] if ref is None else []
                try:
                    out = run_tool(tool, ["run", mdir, "--batch", str(batch), "--threads",
                                          str(threads), "--probs", ppath, "--dump-inputs", ipath]
                                   + extra + paths)
                    probs = read_probs(ppath, n, K)
                    inputs = read_inputs(ipath, spec, n)
                except (RuntimeError, ValueError) as e:
                    failures.append("%s: %s" % (tag, e))
                    continue
                if ref is None:
                    ref_inputs, ref = inputs, truth(net, inputs)
                elif any(not np.array_equal(a, b) for a, b in zip(inputs, ref_inputs)):
                    failures.append("%s: dumped inputs differ from the first run's" % tag)
                diff = np.abs(probs.astype(np.float64) - ref)
                worst = max(worst, float(diff.max()))
                ldiff = log_diff(probs, ref)
                worst_log = max(worst_log, ldiff)
                row, col = np.unravel_index(np.argmax(diff), diff.shape)
                print("%-28s max |C - torch| = %.3g (image %d, class %s), max |log C - log torch| "
                      "= %.3g" % (tag, diff.max(), row, spec.classes[col], ldiff))
                if not diff.max() <= prob_tol:
                    failures.append("%s: probabilities differ by %.3g > %g (image %s)" % (
                        tag, diff.max(), prob_tol, paths[row]))
                if not ldiff <= log_tol:
                    failures.append("%s: log probabilities differ by %.3g > %g" % (
                        tag, ldiff, log_tol))
                if not np.all(np.isfinite(probs)) or np.abs(probs.sum(axis=1) - 1).max() > 1e-4:
                    failures.append("%s: probabilities are not finite or do not sum to 1" % tag)
                # The printed top-1 lines ("<image>\t<class>\t<prob>"), where present.
                lines = [l.split("\t") for l in out.splitlines() if l.count("\t") == 2]
                if len(lines) == n:
                    for k, (img, cls, _) in enumerate(lines):
                        best = spec.classes[int(np.argmax(probs[k]))]
                        if cls != best and probs[k].max() - np.sort(probs[k])[-2] > 1e-6:
                            failures.append("%s: printed top-1 %s for image %d, probs say %s" % (
                                tag, cls, k, best))
                            break
            if ref is None:
                continue

            if label not in NO_PY_INPUTS:
                # Python-written inputs through --inputs (same layout as --dump-inputs).
                try:
                    grays = read_gray(os.path.join(tmp, label + ".gray"))
                    py_inputs = preprocess_batch(spec, grays)
                    fpath = os.path.join(tmp, label + "-py.in")
                    ppath = os.path.join(tmp, label + "-py.probs")
                    write_inputs(fpath, py_inputs)
                    run_tool(tool, ["run", mdir, "--inputs", fpath, "--count", str(n),
                                    "--batch", "7", "--threads", "2", "--probs", ppath])
                    py_probs, py_truth = read_probs(ppath, n, K), truth(net, py_inputs)
                    diff = np.abs(py_probs.astype(np.float64) - py_truth)
                    ldiff = log_diff(py_probs, py_truth)
                    worst = max(worst, float(diff.max()))
                    worst_log = max(worst_log, ldiff)
                    print("%-28s max |C - torch| = %.3g, max |log C - log torch| = %.3g" % (
                        label + " --inputs (python warp)", diff.max(), ldiff))
                    if not diff.max() <= prob_tol or not ldiff <= log_tol:
                        failures.append("%s --inputs: probabilities differ by %.3g (log %.3g) > %g "
                                        "(log %g)" % (label, diff.max(), ldiff, prob_tol, log_tol))
                except (RuntimeError, ValueError, OSError) as e:
                    failures.append("%s --inputs: %s" % (label, e))

            # The test means something only if the outputs are spread.
            pmax = ref.max(axis=1)
            top = ref.argmax(axis=1)
            confident = int(np.sum(pmax >= 0.99))
            distinct = len(set(top.tolist()))
            print("%-28s max prob median %.3f (%.3f..%.3f), %d of %d >= 0.99, %d distinct top-1"
                  % (label + " truth", np.median(pmax), pmax.min(), pmax.max(), confident, n,
                     distinct))
            if confident > n // 4:
                failures.append("%s: %d of %d crops have max prob >= 0.99 (saturated)" % (
                    label, confident, n))
            if distinct < 3:
                failures.append("%s: only %d distinct top-1 classes" % (label, distinct))
            if np.median(pmax) < 2.0 / K:
                failures.append("%s: the probabilities are nearly uniform" % label)
            summary.append("%s %.2g (log %.2g)" % (label, worst, worst_log))

    for f in failures:
        print("FAIL: " + f)
    print("engine parity: max |C - torch| per model: %s; %s" % (
        ", ".join(summary) or "-", "OK" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
