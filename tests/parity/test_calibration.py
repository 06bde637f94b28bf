#!/usr/bin/python3
"""Calibration (models/FORMAT.md, "Calibration"): a model's temperature T is applied after TTA,
p = softmax(ln p_tta / T), the same way in the C engine and in the PyTorch reference, and
train/calibrate.py's fit finds the temperature that minimises the log loss.

On a random-weight C4 model (tests/models/parity_c4.yaml) and 12 real NDSB crops:
- with `calibration: {temperature: 1.7}` and --tta 1, the C engine equals the reference
  network (which applies softmax(z / T)) to 1e-5, and differs from the uncalibrated answer
  (the setting is not ignored);
- with --tta 4, the calibrated C answer equals p_tta^(1/T) renormalised, where p_tta is the
  uncalibrated C answer with the same TTA (so the temperature comes after the TTA mean);
- the C loader refuses a temperature outside 0.05..20 naming the key;
- calibrate.fit_temperature recovers T from probabilities made with a known temperature;
- the Python spec parser (which calibrate.py, evaluate.py and a warm start read) loads the
  shipped models/ndsb-fast/model.yaml with the daemon's own blocks (precision, lineage, ...)
  and its temperature.
Exits 77 (skip) without the NDSB data, 1 on failure.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from test_warp_parity import (ROOT, data_dir_or_skip, make_models, pick_images,  # noqa: E402
                              read_probs, run_tool, tool_path)
from planktonnet import load_model, load_spec  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "train"))
import calibrate  # noqa: E402

T = 1.7
torch.set_num_threads(min(2, os.cpu_count() or 1))


def with_temperature(src, dst, t):
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        data = open(os.path.join(src, f), "rb").read()
        if f == "model.yaml":
            data += b"calibration: {temperature: %s}\n" % repr(t).encode()
        open(os.path.join(dst, f), "wb").write(data)
    return dst


def probs_of(tool, mdir, paths, k, tta, tmp, tag):
    out = os.path.join(tmp, tag + ".probs")
    run_tool(tool, ["run", mdir, "--tta", str(tta), "--threads", "2", "--probs", out] + paths)
    return read_probs(out, len(paths), k).astype(np.float64)


def main():
    data = data_dir_or_skip()
    tool = tool_path()
    paths = [p for p, _ in pick_images(data)[:12]]
    failures = []
    with tempfile.TemporaryDirectory(prefix="pd-calibration-") as tmp:
        plain = make_models(tmp, [("c4", "parity_c4.yaml", "f32", 51)])["c4"]
        hot = with_temperature(plain, os.path.join(tmp, "c4-hot"), T)
        try:
            shipped = load_spec(os.path.join(ROOT, "models", "ndsb-fast", "model.yaml"))
            if not shipped.temperature > 0:
                failures.append("models/ndsb-fast: temperature %r" % shipped.temperature)
        except Exception as e:  # noqa: BLE001 (any parse failure is the finding)
            failures.append("the Python spec parser refuses models/ndsb-fast/model.yaml: %s" % e)
        spec, net = load_model(hot, torch.float64)
        if spec.temperature != T:
            failures.append("the Python spec parser read temperature %r, want %r" % (
                spec.temperature, T))
        k = spec.n_classes
        raw1 = probs_of(tool, plain, paths, k, 1, tmp, "raw1")
        cal1 = probs_of(tool, hot, paths, k, 1, tmp, "cal1")
        from test_engine_parity import truth  # noqa: E402
        from planktonnet.warp import preprocess_batch  # noqa: E402
        from test_warp_parity import read_gray  # noqa: E402
        gpath = os.path.join(tmp, "g.gray")
        run_tool(tool, ["run", plain, "--tta", "1", "--dump-gray", gpath] + paths)
        ref = truth(net, preprocess_batch(spec, read_gray(gpath)))
        d = float(np.abs(cal1 - ref).max())
        moved = float(np.abs(cal1 - raw1).max())
        print("tta 1: max |C calibrated - torch calibrated| = %.3g; calibration moved the answer "
              "by up to %.3g" % (d, moved))
        if not d <= 1e-5:
            failures.append("C and PyTorch calibrated answers differ by %.3g" % d)
        if not moved > 1e-3:
            failures.append("the temperature changed the answer by only %.3g" % moved)
        raw4 = probs_of(tool, plain, paths, k, 4, tmp, "raw4")
        cal4 = probs_of(tool, hot, paths, k, 4, tmp, "cal4")
        want = calibrate.apply_temperature(raw4, T)
        d4 = float(np.abs(cal4 - want).max())
        print("tta 4: max |C calibrated - (C uncalibrated TTA mean)^(1/T)| = %.3g" % d4)
        if not d4 <= 1e-5:
            failures.append("the temperature is not applied after the TTA mean: %.3g" % d4)
        bad = with_temperature(plain, os.path.join(tmp, "c4-bad"), 40.0)
        r = subprocess.run([tool, "check", bad], capture_output=True, text=True)
        if r.returncode == 0 or "temperature" not in r.stderr:
            failures.append("temperature 40 not refused by the C loader: exit %d %r" % (
                r.returncode, r.stderr.strip()))
        # the fit recovers a known temperature
        rng = np.random.default_rng(3)
        logits = rng.normal(size=(2000, 10)) * 3
        y = np.array([rng.choice(10, p=np.exp(l) / np.exp(l).sum()) for l in logits])
        p_sharp = calibrate.apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=1),
                                              0.5)
        t_fit = calibrate.fit_temperature(p_sharp, y)
        print("fit on probabilities sharpened by T = 0.5: T = %.3f (want about 2)" % t_fit)
        if not 1.7 < t_fit < 2.3:
            failures.append("fit_temperature found %.3f, want about 2" % t_fit)
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("OK: calibration applied after TTA, the same in C and PyTorch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
