#!/usr/bin/python3
"""Synthetic shadowgraph frames with known organisms, for bench/frames.

No public set of whole plankton frames with object boxes exists, so this
pastes NDSB crops of the model's VALIDATION split (train/splits/*.tsv rows
whose split is `val`; never a training crop) at known, non-overlapping
positions onto frames, multiplicatively as a shadowgraph forms its image:

  frame = level * flat(x) * vignette(x, y) * T(x, y) * (1 + n1) + n2

T is the crop's transmission (crop / 255: organism dark, background ~1),
flat(x) a flat field that varies along the columns (smooth swings of +-15%
and a +-2% per-column gain pattern, as a line-scan sensor has), vignette a
radial fall-off (or along the columns only, --line-scan), n1 multiplicative
(shot-like) and n2 additive (read) Gaussian noise. The noise-free
level * flat * vignette is written too: the flat-field image a camera would
send once per stream.

The ground-truth box of each organism is its tight box in the frame: the
union of the crop's dark components (below 255 * (1 - threshold)) of at
least --gt-min-area pixels, where the crop was pasted, less the components
that touch the crop's edge (pieces of neighbours that the original cut went
through) unless that is the largest component.

Writes into OUT: frame_NNN.pgm (P5, 16-bit words with --bits significant
bits, or 8-bit), flat_NNN.pgm, frames.tsv (frame, objects, flat) and gt.tsv
(frame, object, x, y, width, height, area, paste_x, paste_y, crop_width,
crop_height, label, path).

  /usr/bin/python3 bench/frames/make_frames.py OUT [--counts 10,25,50,100,150,200]
      [--per-count 3] [--size 2048] [--bits 12] [--line-scan] [--seed 1]
"""
import argparse
import csv
import os
import random
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure_margins import components  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def val_crops(split, data):
    rows = []
    with open(split, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if r["split"] == "val":
                rows.append((r["path"], r["label"]))
    if not rows:
        raise SystemExit(f"make_frames: no val rows in {split}")
    return rows


def organism_box(crop, threshold, min_area):
    """Union box of the crop's dark components >= min_area, less those that
    touch the crop's edge (pieces of neighbours the original cut went
    through; the organism itself has its margin) unless it is the largest:
    (x0, y0, x1, y1, area) or None."""
    mask = crop.astype(np.float64) < 255.0 * (1.0 - threshold)
    comps = components(mask)
    if not comps:
        return None
    h, w = crop.shape
    largest = max(comps)
    keep = [c for c in comps if c[0] >= min_area and
            (c is largest or not (c[1] == 0 or c[3] == 0 or c[2] == h - 1 or c[4] == w - 1))]
    if not keep:
        return None
    y0 = min(c[1] for c in keep)
    y1 = max(c[2] for c in keep)
    x0 = min(c[3] for c in keep)
    x1 = max(c[4] for c in keep)
    return x0, y0, x1, y1, sum(c[0] for c in keep)


def write_pgm(path, a, maxval):
    h, w = a.shape
    with open(path, "wb") as f:
        f.write(f"P5\n{w} {h}\n{maxval}\n".encode())
        if maxval > 255:
            f.write(a.astype(">u2").tobytes())
        else:
            f.write(a.astype(np.uint8).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--split", default=os.path.join(ROOT, "train", "splits", "ndsb_seed1.tsv"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "ndsb", "train"))
    ap.add_argument("--counts", default="10,25,50,100,150,200")
    ap.add_argument("--per-count", type=int, default=3)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--bits", type=int, default=12, help="8 writes 8-bit frames")
    ap.add_argument("--line-scan", action="store_true",
                    help="vignetting along the columns only (a line-scan camera)")
    ap.add_argument("--vignette", type=float, default=0.12, help="fall-off at the corners")
    ap.add_argument("--noise", type=float, default=0.015, help="multiplicative sigma")
    ap.add_argument("--read-noise", type=float, default=0.004, help="additive sigma / full scale")
    ap.add_argument("--threshold", type=float, default=0.1)
    ap.add_argument("--gt-min-area", type=int, default=2,
                    help="fragments of the crop counted in its organism box")
    ap.add_argument("--gap", type=int, default=4, help="pixels between pasted crops")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.isdir(args.data):
        print(f"make_frames: no NDSB crops at {args.data}", file=sys.stderr)
        return 77
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    crops = val_crops(args.split, args.data)
    rng.shuffle(crops)
    counts = [int(c) for c in args.counts.split(",")]
    plan = [n for n in counts for _ in range(args.per_count)]
    os.makedirs(args.out, exist_ok=True)
    maxval = (1 << args.bits) - 1
    level = 0.88 * maxval
    S = args.size
    xs = np.arange(S, dtype=np.float64)
    next_crop = 0
    skipped = 0
    cache = {}
    ftsv = open(os.path.join(args.out, "frames.tsv"), "w")
    ftsv.write("frame\tobjects\tflat\n")
    gtsv = open(os.path.join(args.out, "gt.tsv"), "w")
    gtsv.write("frame\tobject\tx\ty\twidth\theight\tarea\tpaste_x\tpaste_y\tcrop_width\t"
               "crop_height\tlabel\tpath\n")
    for fi, n in enumerate(plan):
        name = f"frame_{fi:03d}"
        phase = rng.uniform(0, 2 * np.pi)
        flat = (0.85 + 0.15 * np.sin(2 * np.pi * xs / rng.uniform(500, 1500) + phase)
                + 0.02 * nrng.standard_normal(S))
        cy, cx = (S - 1) / 2.0, (S - 1) / 2.0
        if args.line_scan:
            r2 = ((xs - cx) / cx) ** 2
            vig = np.tile(1.0 - args.vignette * r2, (S, 1))
        else:
            yy, xx = np.mgrid[0:S, 0:S]
            r2 = (((xx - cx) / cx) ** 2 + ((yy - cy) / cy) ** 2) / 2.0
            vig = 1.0 - args.vignette * r2
        bg = level * flat[None, :] * vig
        trans = np.ones((S, S), dtype=np.float64)
        taken = np.zeros((S, S), dtype=bool)
        placed = 0
        tries = 0
        while placed < n and tries < 100 * n:
            tries += 1
            path, label = crops[next_crop % len(crops)]
            if next_crop not in cache:
                c = np.asarray(Image.open(os.path.join(args.data, path)).convert("L"))
                cache.clear()
                cache[next_crop] = (c, organism_box(c, args.threshold, args.gt_min_area))
            crop, box = cache[next_crop]
            h, w = crop.shape
            if box is None or w + 2 * args.gap >= S or h + 2 * args.gap >= S:
                next_crop += 1
                continue
            ok = False
            for _ in range(50):
                px = rng.randrange(args.gap, S - w - args.gap)
                py = rng.randrange(args.gap, S - h - args.gap)
                g = args.gap
                if not taken[py - g:py + h + g, px - g:px + w + g].any():
                    ok = True
                    break
            next_crop += 1
            if not ok:
                skipped += 1  # no room left for this one: the next crop
                continue
            taken[py:py + h, px:px + w] = True
            trans[py:py + h, px:px + w] = crop.astype(np.float64) / 255.0
            x0, y0, x1, y1, area = box
            gtsv.write(f"{name}\t{placed}\t{px + x0}\t{py + y0}\t{x1 - x0 + 1}\t{y1 - y0 + 1}\t"
                       f"{area}\t{px}\t{py}\t{w}\t{h}\t{label}\t{path}\n")
            placed += 1
        if placed < n:
            print(f"make_frames: {name}: placed {placed} of {n} crops", file=sys.stderr)
        sig = bg * trans
        img = sig * (1.0 + args.noise * nrng.standard_normal((S, S))) \
            + args.read_noise * maxval * nrng.standard_normal((S, S))
        img = np.clip(np.rint(img), 0, maxval)
        write_pgm(os.path.join(args.out, name + ".pgm"), img, maxval)
        write_pgm(os.path.join(args.out, f"flat_{fi:03d}.pgm"), np.clip(np.rint(bg), 0, maxval),
                  maxval)
        ftsv.write(f"{name}\t{placed}\tflat_{fi:03d}\n")
        print(f"{name}: {placed} organisms", flush=True)
    ftsv.close()
    gtsv.close()
    print(f"make_frames: {len(plan)} frames, {next_crop - skipped} validation crops pasted "
          f"({skipped} skipped for want of room) of {len(crops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
