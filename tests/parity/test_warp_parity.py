#!/usr/bin/python3
"""The C preprocessing against the Python one, on real NDSB crops.

For a fixed sample of 24 real crops (spread over the classes, with the
largest, smallest, widest, tallest and most elongated ones), and the two
parity models (tests/models/parity_{c4,d4}.yaml: fit and fixed-factor image
branches, size features, different normalisation), runs
`planktond-model run --dump-gray --dump-inputs` and checks:

- train/planktonnet/warp.py on the C-decoded gray pixels reproduces the C
  tool's input slots: max abs difference <= 1e-4 (normalised units);
- PIL's decode of the same files gives the C decoder's pixels.

Environment (set by meson): PLANKTOND_MODEL_TOOL, PLANKTON_DATA,
PLANKTON_SOURCE_ROOT, PYTHONPATH=<src>/train. Exits 77 (skip) when the NDSB
data is absent, 1 on failure. test_engine_parity.py imports the helpers here.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("PLANKTON_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))

import numpy as np  # noqa: E402

from planktonnet import load_spec  # noqa: E402
from planktonnet.warp import preprocess_batch  # noqa: E402

WARP_TOL = 1e-4
N_IMAGES = 24
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


# ---------------------------------------------------------------------------
# shared helpers (also used by test_engine_parity.py)

def data_dir_or_skip():
    data = os.environ.get("PLANKTON_DATA") or os.path.join(ROOT, "..", "shared", "data", "ndsb")
    if not os.path.isdir(os.path.join(data, "train")):
        print("SKIP: NDSB data not found at %s" % os.path.join(data, "train"))
        sys.exit(77)
    return data


def tool_path():
    tool = os.environ.get("PLANKTOND_MODEL_TOOL") or os.path.join(ROOT, "build", "planktond-model")
    if not os.access(tool, os.X_OK):
        print("FAIL: the C tool %s does not exist or is not executable "
              "(set PLANKTOND_MODEL_TOOL)" % tool)
        sys.exit(1)
    return tool


def pick_images(data_dir, n=N_IMAGES):
    """A fixed, deterministic sample of n crops: the extremes of size and shape, then classes
    spread evenly over the sorted class list. Returns [(path, (w, h))]."""
    from PIL import Image

    train = os.path.join(data_dir, "train")
    files = []
    for c in sorted(os.listdir(train)):
        d = os.path.join(train, c)
        if os.path.isdir(d):
            files.extend(os.path.join(d, f) for f in sorted(os.listdir(d))
                         if f.lower().endswith(IMAGE_EXTS))
    if len(files) < n:
        raise SystemExit("FAIL: only %d images under %s" % (len(files), train))
    dims = {}
    for f in files:     # header reads only (about a second for the 25k crops)
        with Image.open(f) as im:
            dims[f] = im.size
    rel = lambda f: os.path.relpath(f, train)  # noqa: E731  (tie-breaks independent of the path)
    keys = [
        lambda f: dims[f][0] * dims[f][1],                   # area: largest
        lambda f: -dims[f][0] * dims[f][1],                  # smallest
        lambda f: dims[f][0], lambda f: dims[f][1],          # widest, tallest
        lambda f: -dims[f][0], lambda f: -dims[f][1],        # narrowest, shortest
        lambda f: dims[f][0] / dims[f][1], lambda f: dims[f][1] / dims[f][0],   # elongated
    ]
    chosen = []
    for key in keys:
        best = max(files, key=lambda f: (key(f), rel(f)))
        if best not in chosen:
            chosen.append(best)
    second_largest = sorted(files, key=lambda f: (dims[f][0] * dims[f][1], rel(f)))[-2]
    if second_largest not in chosen:
        chosen.append(second_largest)
    per_class = {}
    for f in files:
        per_class.setdefault(os.path.dirname(f), []).append(f)
    classes = sorted(per_class)
    k = 0
    while len(chosen) < n:
        c = classes[(k * 37) % len(classes)]          # 37 is coprime with 121: every class once
        fs = per_class[c]
        f = fs[(k * 7919 + len(fs) // 2) % len(fs)]
        if f not in chosen:
            chosen.append(f)
        k += 1
    return [(f, dims[f]) for f in chosen[:n]]


def make_models(tmp, which):
    """Random-weight model folders: which = [(label, yaml name, dtype, seed)] -> {label: dir}."""
    from make_random_model import make_random_model

    out = {}
    for label, yaml_name, dtype, seed in which:
        d = os.path.join(tmp, label)
        make_random_model(os.path.join(ROOT, "tests", "models", yaml_name), d, seed=seed,
                          dtype=dtype, verbose=False)
        out[label] = d
    return out


def run_tool(tool, args):
    """Runs the C tool; raises with its stderr on a non-zero exit. Returns stdout."""
    p = subprocess.run([tool] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError("%s %s\nexited %d:\n%s" % (os.path.basename(tool), " ".join(
            a if len(a) < 80 else "..." for a in args[:12]), p.returncode, p.stderr.strip()))
    return p.stdout


def read_gray(path):
    """--dump-gray: per image int32 LE width, int32 LE height, width*height bytes."""
    buf = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(buf):
        if pos + 8 > len(buf):
            raise ValueError("%s: truncated header at byte %d" % (path, pos))
        w, h = np.frombuffer(buf, "<i4", 2, pos)
        pos += 8
        if w < 1 or h < 1 or pos + w * h > len(buf):
            raise ValueError("%s: bad image %dx%d at byte %d" % (path, w, h, pos - 8))
        out.append(np.frombuffer(buf, np.uint8, w * h, pos).reshape(h, w).copy())
        pos += int(w) * int(h)
    return out


def branch_lengths(spec):
    return [b.input.length for b in spec.branches]


def read_inputs(path, spec, n):
    """--dump-inputs: float32 LE, per branch in model order all n images' slots.
    Returns per branch [n, 1, S, S] (image) or [n, F] (size features), float32."""
    data = np.fromfile(path, dtype="<f4")
    want = n * sum(branch_lengths(spec))
    if data.size != want:
        raise ValueError("%s holds %d floats, expected %d (%d images)" % (path, data.size, want, n))
    out, pos = [], 0
    for b in spec.branches:
        L = b.input.length
        a = data[pos:pos + n * L]
        pos += n * L
        out.append(a.reshape(n, 1, b.input.size, b.input.size) if b.input.kind == "image"
                   else a.reshape(n, L))
    return out


def write_inputs(path, arrays):
    with open(path, "wb") as f:
        for a in arrays:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def read_probs(path, n, k):
    data = np.fromfile(path, dtype="<f4")
    if data.size != n * k:
        raise ValueError("%s holds %d floats, expected %d x %d" % (path, data.size, n, k))
    return data.reshape(n, k)


def pil_gray(path):
    """PIL's decode as the C decoder is expected to do it: libjpeg's own gray output."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("L", im.size)       # JPEG: decode straight to gray (Y), no colour conversion
        return np.array(im.convert("L"))


# ---------------------------------------------------------------------------

def main():
    data = data_dir_or_skip()
    tool = tool_path()
    images = pick_images(data)
    paths = [p for p, _ in images]
    print("%d crops, %dx%d .. %dx%d" % (len(images), *min(d for _, d in images),
                                        *max(d for _, d in images)))
    failures = []
    with tempfile.TemporaryDirectory(prefix="pd-warp-parity-") as tmp:
        models = make_models(tmp, [("c4", "parity_c4.yaml", "f32", 21),
                                   ("d4", "parity_d4.yaml", "f32", 22)])
        grays = None
        for label, mdir in models.items():
            spec = load_spec(os.path.join(mdir, "model.yaml"))
            gpath, ipath = os.path.join(tmp, label + ".gray"), os.path.join(tmp, label + ".in")
            run_tool(tool, ["run", mdir, "--threads", "1", "--dump-gray", gpath,
                            "--dump-inputs", ipath] + paths)
            g = read_gray(gpath)
            if len(g) != len(paths):
                failures.append("%s: gray dump holds %d images, expected %d" % (label, len(g),
                                                                                 len(paths)))
                continue
            for (p, (w, h)), a in zip(images, g):
                if a.shape != (h, w):
                    failures.append("%s: C decode of %s is %dx%d, PIL says %dx%d" % (
                        label, p, a.shape[1], a.shape[0], w, h))
            if grays is None:
                grays = g
            elif any(not np.array_equal(a, b) for a, b in zip(grays, g)):
                failures.append("%s: the C decoder gave different pixels in a second run" % label)
            c_inputs = read_inputs(ipath, spec, len(paths))
            py_inputs = preprocess_batch(spec, g)
            for b, (ci, pi) in enumerate(zip(c_inputs, py_inputs)):
                br = spec.branches[b]
                diff = np.abs(ci.astype(np.float64) - pi.astype(np.float64))
                worst = int(np.argmax(diff.reshape(len(paths), -1).max(axis=1)))
                what = ("%s %s" % (br.input.rescale, br.input.size) if br.input.kind == "image"
                        else "size features %s" % ",".join(br.input.features))
                print("%s branch %-5s (%-28s): max |C - python| = %.3g (worst %s)" % (
                    label, br.name, what, diff.max(), os.path.relpath(paths[worst], data)))
                if not diff.max() <= WARP_TOL:
                    failures.append("%s branch %s: warp differs by %.3g > %g on %s" % (
                        label, br.name, diff.max(), WARP_TOL, paths[worst]))

        # PIL vs the C decoder
        if grays is not None and len(grays) == len(paths):
            worst, n_diff, n_px = 0, 0, 0
            for p, cg in zip(paths, grays):
                pg = pil_gray(p)
                if pg.shape != cg.shape:
                    failures.append("PIL decodes %s as %s, C as %s" % (p, pg.shape, cg.shape))
                    continue
                d = np.abs(pg.astype(np.int16) - cg.astype(np.int16))
                worst = max(worst, int(d.max()))
                n_diff += int(np.count_nonzero(d))
                n_px += d.size
            print("PIL vs C decode: max pixel difference %d (%d of %d pixels differ)" % (
                worst, n_diff, n_px))
            # Both decode through libjpeg's gray output (the Y channel of these baseline
            # JPEGs, default integer IDCT). On Debian 12 PIL and the C decoder link the same
            # libjpeg62-turbo and agree exactly (0 of ~590k pixels differ), so equality is
            # required. A PIL wheel bundling another libjpeg build may round its IDCT
            # differently by 1 level; on such a machine this check would need "<= 1".
            if worst != 0:
                failures.append("PIL and the C decoder differ by up to %d gray levels" % worst)

    for f in failures:
        print("FAIL: " + f)
    print("warp parity: %s" % ("OK" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
