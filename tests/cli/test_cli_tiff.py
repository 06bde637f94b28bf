"""plankton-client classify on TIFF crops against a real planktond (tiny
random-weight model): real NDSB crops (JPEG) are decoded to gray and
written as 8-bit gray TIFF (libtiff's writer, LZW strips) and as PNG of the
same pixels by tests/tiff_convert ($TIFF_CONVERT);
- a .tif crop gets exactly the answer of the PNG of its pixels (csv --probs,
  every digit), and both match the engine (planktond-model run) on the PNG;
- a folder walk takes *.tif and *.TIFF beside *.png and *.jpg, and counts
  and names the files it skips by extension on stderr (the first five, then
  "and N more");
- an RGB TIFF is refused by the daemon with a message naming the file and
  the photometric interpretation, and the other crops are still answered.
Exit 77 without the data."""
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

TOL = 2e-5
SKIPPED_MANY = "files not named *.png, *.jpg, *.jpeg, *.tif or *.tiff"


def convert(src, tif, png):
    p = subprocess.run([h.env("TIFF_CONVERT"), src, tif, png], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("tiff_convert %s: %s" % (src, p.stderr))


def probs_rows(out):
    rows = list(csv.reader(io.StringIO(out)))
    return {row[0]: row[1:] for row in rows[1:]}


def main():
    f = h.Failures("cli_tiff")
    root = h.data_root()
    labels = h.model_classes()
    srcs = []
    for c in ("copepod_calanoid", "amphipods", "protist_other"):
        d = os.path.join(root, c)
        names = sorted(n for n in os.listdir(d) if n.lower().endswith(".jpg"))
        if not names:
            print("skipped: no crops in %s" % d)
            sys.exit(h.SKIP)
        srcs.append(os.path.join(d, names[0]))
    with tempfile.TemporaryDirectory(prefix="pc-cli-tiff-") as tmp:
        tree = os.path.join(tmp, "crops")
        os.makedirs(tree)
        pairs = []
        for i, src in enumerate(srcs):
            tif = os.path.join(tree, "crop%d.tif" % i)
            png = os.path.join(tree, "crop%d.png" % i)
            convert(src, tif, png)
            with open(tif, "rb") as fh:
                head = fh.read(4)
            f.check(head in (b"II*\0", b"MM\0*"), "%s is a TIFF: %r" % (tif, head))
            pairs.append((tif, png))
        upper = os.path.join(tree, "crop0_copy.TIFF")
        shutil.copyfile(pairs[0][0], upper)
        jpg = os.path.join(tree, "original.jpg")
        shutil.copyfile(srcs[0], jpg)
        skipped = ["a.bmp", "b.gif", "c.tga", "d.webp", "e.raw", "f.heic", "notes.txt"]
        for n in skipped:
            with open(os.path.join(tree, n), "wb") as fh:
                fh.write(b"not a crop\n")
        ref = h.engine_probs([png for _, png in pairs])

        with h.Daemon() as d:
            # one file at a time: the .tif and the .png of the same pixels
            for i, (tif, png) in enumerate(pairs):
                rt = h.run_cli(["classify", "-f", "csv", "--probs", tif], socket=d.socket)
                rp = h.run_cli(["classify", "-f", "csv", "--probs", png], socket=d.socket)
                f.check(rt.rc == 0 and rt.err == "", "classify %s: %r" % (tif, rt))
                f.check(rp.rc == 0, "classify %s: %r" % (png, rp))
                t, p = probs_rows(rt.out).get(tif), probs_rows(rp.out).get(png)
                f.check(t is not None and t == p,
                        "TIFF and PNG of the same pixels, the same answer exactly: %r / %r" % (t, p))
                if t and len(t) == len(labels):
                    got = np.array([float(v) for v in t])
                    worst = float(np.max(np.abs(got - ref[i])))
                    f.check(worst <= TOL, "%s against the engine: largest difference %g" % (tif, worst))

            # the folder walk: TIFFs taken, the rest counted and named
            r = h.run_cli(["classify", "-f", "csv", "--probs", tree], socket=d.socket)
            f.check(r.rc == 0, "classify the folder: %r" % r)
            names = ", ".join(os.path.join(tree, n) for n in skipped[:5])
            want_err = ("plankton-client: classify: skipped %d %s (%s and %d more)\n"
                        % (len(skipped), SKIPPED_MANY, names, len(skipped) - 5))
            f.check(r.err == want_err, "skipped files counted and named:\n%r\nwant\n%r" % (r.err, want_err))
            rows = probs_rows(r.out)
            want_paths = sorted([t for t, _ in pairs] + [p for _, p in pairs] + [upper, jpg])
            f.check(sorted(rows) == want_paths, "walked: %r" % sorted(rows))
            f.check(rows.get(upper) == rows.get(pairs[0][0]) == rows.get(pairs[0][1]),
                    "*.TIFF, *.tif and *.png of one crop: one answer")
            for tif, png in pairs:
                f.check(rows.get(tif) == rows.get(png), "in the walk too: %s = %s" % (tif, png))

            # an RGB TIFF: refused by the daemon, naming the file and the kind
            rgb = os.path.join(tmp, "rgb.tif")
            shutil.copyfile(os.path.join(h.env("PD_TIFF_CORPUS"), "rgb8.tif"), rgb)
            r = h.run_cli(["classify", rgb, pairs[0][0]], socket=d.socket)
            f.check(r.rc == 1, "an RGB TIFF fails the run: %r" % r)
            f.check(rgb in r.err and "photometric interpretation RGB (2)" in r.err,
                    "the message names the file and the photometric interpretation: %r" % r.err)
            f.check(r.out.startswith(pairs[0][0]), "the gray TIFF is still answered: %r" % r.out)
            f.check(d.stop() is None, "the daemon drains and exits 0: %r" % d.stop())
    f.finish()


if __name__ == "__main__":
    main()
