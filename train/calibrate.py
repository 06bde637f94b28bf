#!/usr/bin/python3
"""calibrate.py: fit a model folder's temperature on the validation split (after TTA).

    /usr/bin/python3 train/calibrate.py models/ndsb-fast --tool build/planktond-model \\
        [--split train/splits/ndsb_seed1.tsv] [--data ../shared/data/ndsb/train] \\
        [--side val] [--tta N] [--threads 2] [--write]

The C engine (`planktond-model run`, the model's own TTA unless --tta) gives the probabilities
of every crop of one side of the split, with the folder's calibration switched off. One
temperature T is fitted by minimising the log loss of

    p_T = p^(1/T) / sum(p^(1/T))          (= softmax(z / T) without TTA)

over T in [0.05, 20] (golden-section search on ln T; the log loss is smooth in 1/T). The
engine and train/planktonnet apply it the same way (models/FORMAT.md, "Calibration"). Printed:
log loss, accuracy, top-5 and the expected calibration error (15 equal-width confidence bins)
before and after, and a two-fold cross-fit (T fitted on one half of the crops, scored on the
other) so the gain is not only measured on the crops it was fitted on. --write puts
`calibration: {temperature: T}` into the folder's model.yaml (replacing an earlier one).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from planktonnet import load_spec  # noqa: E402
from planktonnet.data import read_split  # noqa: E402
from planktonnet.metrics import summary  # noqa: E402

T_LO, T_HI = 0.05, 20.0
_CALIB_RE = re.compile(r"^calibration:.*(\n[ \t]+.*)*\n?", re.M)


def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None)) / t
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray, t: float) -> float:
    return summary(apply_temperature(probs, t), labels)["log_loss"]


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """argmin over T of the log loss, by golden-section search on ln T."""
    a, b = math.log(T_LO), math.log(T_HI)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(probs, labels, math.exp(c)), nll(probs, labels, math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(probs, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(probs, labels, math.exp(d))
    return math.exp((a + b) / 2)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def uncalibrated_copy(model_dir: str, tmp: str) -> str:
    """The model folder with its calibration removed (so the engine gives raw TTA means)."""
    d = os.path.join(tmp, "model")
    shutil.copytree(model_dir, d, symlinks=False)
    path = os.path.join(d, "model.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(_CALIB_RE.sub("", text))
    return d


def engine_probs(tool: str, model_dir: str, paths, n_classes: int, tta, threads: int, tmp: str):
    out = os.path.join(tmp, "probs.f32")
    cmd = [tool, "run", model_dir, "--threads", str(threads), "--probs", out]
    if tta is not None:
        cmd += ["--tta", str(tta)]
    r = subprocess.run(cmd + list(paths), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise SystemExit("calibrate: %s failed (exit %d): %s" % (tool, r.returncode,
                                                                 r.stderr.strip()[-500:]))
    probs = np.fromfile(out, dtype="<f4")
    if probs.size != len(paths) * n_classes:
        raise SystemExit("calibrate: %s wrote %d floats, expected %d x %d" % (
            out, probs.size, len(paths), n_classes))
    return probs.reshape(len(paths), n_classes).astype(np.float64)


def write_temperature(model_dir: str, t: float, note: str) -> None:
    path = os.path.join(model_dir, "model.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = _CALIB_RE.sub("", text).rstrip("\n") + "\n"
    text += "calibration:                     # %s\n  temperature: %.4f\n" % (note, t)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def report(tag: str, probs: np.ndarray, labels: np.ndarray) -> dict:
    m = summary(probs, labels)
    m["ece"] = ece(probs, labels)
    print("%-22s n %d  accuracy %.2f%%  top-5 %.2f%%  log loss %.4f  ECE %.4f" % (
        tag, m["n"], 100 * m["accuracy"], 100 * m["top5"], m["log_loss"], m["ece"]))
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model folder")
    ap.add_argument("--tool", required=True, help="planktond-model binary")
    ap.add_argument("--split", default="train/splits/ndsb_seed1.tsv")
    ap.add_argument("--data", default="../shared/data/ndsb/train")
    ap.add_argument("--side", default="val")
    ap.add_argument("--tta", type=int, help="views per crop (default: the model's own)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="store the temperature in model.yaml")
    args = ap.parse_args(argv)

    spec = load_spec(os.path.join(args.model, "model.yaml"))
    split = read_split(args.split)
    rows = split.val if args.side == "val" else split.train
    if not rows:
        raise SystemExit("calibrate: no %s rows in %s" % (args.side, args.split))
    index = {c: i for i, c in enumerate(spec.classes)}
    labels = np.array([index[lab] for _, lab in rows], dtype=np.int64)
    paths = [os.path.join(args.data, p) for p, _ in rows]
    with tempfile.TemporaryDirectory(prefix="pd-calibrate-") as tmp:
        raw = engine_probs(args.tool, uncalibrated_copy(args.model, tmp), paths,
                           spec.n_classes, args.tta, args.threads, tmp)
    t = fit_temperature(raw, labels)
    print("%s: %s side of %s, %d crops, TTA %s: temperature %.4f" % (
        args.model, args.side, args.split, len(rows), args.tta or spec.tta.count, t))
    before = report("before (T = 1)", raw, labels)
    after = report("after (T = %.3f)" % t, apply_temperature(raw, t), labels)
    # two-fold cross-fit: each half scored with the T fitted on the other half
    rng = np.random.default_rng(1)
    order = rng.permutation(len(rows))
    halves = [order[: len(order) // 2], order[len(order) // 2:]]
    cross = np.empty_like(raw)
    ts = []
    for k in (0, 1):
        fit, score = halves[k], halves[1 - k]
        tk = fit_temperature(raw[fit], labels[fit])
        ts.append(tk)
        cross[score] = apply_temperature(raw[score], tk)
    report("cross-fit (T %.3f/%.3f)" % tuple(ts), cross, labels)
    if after["accuracy"] != before["accuracy"]:
        print("note: accuracy changed (ties broken differently)")
    if args.write:
        write_temperature(args.model, t, "fitted by train/calibrate.py on the %s split (%d crops, "
                          "log loss %.4f -> %.4f)" % (args.side, len(rows), before["log_loss"],
                                                      after["log_loss"]))
        print("wrote the temperature into %s" % os.path.join(args.model, "model.yaml"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
