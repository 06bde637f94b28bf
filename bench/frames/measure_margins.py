#!/usr/bin/python3
"""Margin distribution of the NDSB training crops.

For a sample of crops over all classes: threshold each crop relative to its
background (organism dark on white), take the organism's tight box, and print
the margins between that box and the crop's edge: left/right/top/bottom in
pixels and relative to the box size, and how often the organism touches the
crop's edge. This decides how pd_segment cuts a crop out of a frame.

The organism is the largest 8-connected component of the dark pixels; the
"union" figures take every component of at least --min-area pixels instead
(crops with several fragments). The background is the median of the crop's
border pixels (255 on almost every crop); a pixel is dark when it is below
background * (1 - threshold).

  /usr/bin/python3 bench/frames/measure_margins.py [--per-class 30] [--threshold 0.1]
"""
import argparse
import os
import random
import sys
from collections import deque

import numpy as np
from PIL import Image


def components(mask, pixels=None):
    """8-connected components of a boolean mask: list of (area, y0, y1, x0, x1).
    With a list `pixels`, each component's (ys, xs) arrays are appended to it."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    out = []
    ys, xs = np.nonzero(mask)
    for sy, sx in zip(ys.tolist(), xs.tolist()):
        if seen[sy, sx]:
            continue
        seen[sy, sx] = True
        q = deque([(sy, sx)])
        area, y0, y1, x0, x1 = 0, sy, sy, sx, sx
        pts = []
        while q:
            y, x = q.popleft()
            area += 1
            if pixels is not None:
                pts.append((y, x))
            y0, y1, x0, x1 = min(y0, y), max(y1, y), min(x0, x), max(x1, x)
            for dy in (-1, 0, 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in (-1, 0, 1):
                    xx = x + dx
                    if 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        q.append((yy, xx))
        out.append((area, y0, y1, x0, x1))
        if pixels is not None:
            a = np.array(pts)
            pixels.append((a[:, 0], a[:, 1]))
    return out


def fragment_link(a, threshold, min_area):
    """The largest gap (background pixels between, chessboard distance - 1)
    that single linkage needs to join every dark fragment of >= min_area
    pixels of the crop into one object; None for a crop of one fragment."""
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    mask = a.astype(np.float64) < float(np.median(border)) * (1.0 - threshold)
    pix = []
    comps = components(mask, pix)
    frags = [p for c, p in zip(comps, pix) if c[0] >= min_area]
    k = len(frags)
    if k < 2:
        return None
    gap = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            dy = np.abs(frags[i][0][:, None] - frags[j][0][None, :])
            dx = np.abs(frags[i][1][:, None] - frags[j][1][None, :])
            gap[i, j] = gap[j, i] = np.maximum(dx, dy).min() - 1
    # Prim: the largest edge of the minimum spanning tree
    inside = [0]
    best = gap[0].copy()
    worst = 0.0
    while len(inside) < k:
        best[inside] = np.inf
        j = int(np.argmin(best))
        worst = max(worst, best[j])
        inside.append(j)
        best = np.minimum(best, gap[j])
    return worst


def margins(a, threshold, min_area, union):
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = float(np.median(border))
    mask = a.astype(np.float64) < bg * (1.0 - threshold)
    comps = components(mask)
    if not comps:
        return None
    if union:
        keep = [c for c in comps if c[0] >= min_area] or [max(comps)]
        y0 = min(c[1] for c in keep)
        y1 = max(c[2] for c in keep)
        x0 = min(c[3] for c in keep)
        x1 = max(c[4] for c in keep)
    else:
        _, y0, y1, x0, x1 = max(comps)
    h, w = a.shape
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    return dict(left=x0, right=w - 1 - x1, top=y0, bottom=h - 1 - y1, bw=bw, bh=bh, w=w, h=h)


def pct(v, ps=(5, 25, 50, 75, 95)):
    return " ".join(f"{np.percentile(v, p):6.2f}" for p in ps)


def report(title, rows):
    print(f"\n{title} ({len(rows)} crops)")
    print(f"{'':24s}{'p5':>7s}{'p25':>7s}{'p50':>7s}{'p75':>7s}{'p95':>7s}   mean")
    for side, size in (("left", "bw"), ("right", "bw"), ("top", "bh"), ("bottom", "bh")):
        v = np.array([r[side] for r in rows], dtype=np.float64)
        rel = np.array([r[side] / r[size] for r in rows])
        print(f"  {side + ' px':22s}{pct(v)}   {v.mean():6.2f}")
        print(f"  {side + ' / box ' + ('w' if size == 'bw' else 'h'):22s}{pct(rel)}   {rel.mean():6.3f}")
    m = np.array([[r["left"], r["right"], r["top"], r["bottom"]] for r in rows], dtype=np.float64)
    mn = m.min(axis=1)
    print(f"  {'min margin px':22s}{pct(mn)}   {mn.mean():6.2f}")
    near = ((m >= 9) & (m <= 12)).mean()
    print(f"  sides with a margin of 9..12 px: {100 * near:.1f}%; "
          f"exactly 10 px: {100 * (m == 10).mean():.1f}%")
    touch_any = (m == 0).any(axis=1).mean()
    touch_side = (m == 0).mean(axis=0)
    print(f"  touches the crop edge: {100 * touch_any:.1f}% of crops "
          f"(left {100 * touch_side[0]:.1f}%, right {100 * touch_side[1]:.1f}%, "
          f"top {100 * touch_side[2]:.1f}%, bottom {100 * touch_side[3]:.1f}%)")
    # The margin rule: crop side = box side + 2 * margin; which margin rule
    # reproduces the crop sizes best (pixels, fraction of the box, or both)?
    bw = np.array([r["bw"] for r in rows], dtype=np.float64)
    bh = np.array([r["bh"] for r in rows], dtype=np.float64)
    w = np.array([r["w"] for r in rows], dtype=np.float64)
    h = np.array([r["h"] for r in rows], dtype=np.float64)
    # least squares: (w - bw) = 2*(a + b*bw), same for h
    X = np.concatenate([np.stack([np.ones_like(bw), bw], 1), np.stack([np.ones_like(bh), bh], 1)])
    y = np.concatenate([w - bw, h - bh]) / 2.0
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    print(f"  fit per-side margin = {coef[0]:.2f} px + {coef[1]:.4f} * box side "
          f"(residual median |{np.median(np.abs(resid)):.2f}| px, p90 {np.percentile(np.abs(resid), 90):.2f} px)")
    imb = np.abs(m[:, 0] - m[:, 1])
    imv = np.abs(m[:, 2] - m[:, 3])
    print(f"  |left-right| px   {pct(imb)}   |top-bottom| px {pct(imv)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                   "shared", "data", "ndsb", "train"))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--threshold", type=float, default=0.1,
                    help="dark = below background * (1 - threshold)")
    ap.add_argument("--min-area", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.isdir(args.data):
        print(f"measure_margins: no NDSB crops at {args.data}", file=sys.stderr)
        return 77
    rng = random.Random(args.seed)
    files = []
    for cls in sorted(os.listdir(args.data)):
        d = os.path.join(args.data, cls)
        names = sorted(n for n in os.listdir(d) if n.endswith(".jpg"))
        files += [os.path.join(d, n) for n in rng.sample(names, min(args.per_class, len(names)))]
    largest, union, links, empty = [], [], [], 0
    for f in files:
        a = np.asarray(Image.open(f).convert("L"))
        r = margins(a, args.threshold, args.min_area, union=False)
        if r is None:
            empty += 1
            continue
        largest.append(r)
        union.append(margins(a, args.threshold, args.min_area, union=True))
        links.append(fragment_link(a, args.threshold, args.min_area))
    print(f"{len(files)} crops from {args.data} ({args.per_class} per class at most, seed {args.seed}); "
          f"threshold {args.threshold} below the border median; {empty} had no dark pixel")
    sz = np.array([[r["w"], r["h"]] for r in largest])
    print(f"crop width p5/p50/p95 {pct(sz[:, 0], (5, 50, 95))}, height {pct(sz[:, 1], (5, 50, 95))}")
    report("largest component", largest)
    report(f"union of components >= {args.min_area} px", union)
    multi = np.array([v for v in links if v is not None])
    print(f"\nfragments of >= {args.min_area} px: {100 * len(multi) / len(links):.1f}% of crops have "
          f"more than one; the gap single linkage needs to join them all (px):")
    print(f"  p25 {np.percentile(multi, 25):.0f}  p50 {np.percentile(multi, 50):.0f}  "
          f"p75 {np.percentile(multi, 75):.0f}  p90 {np.percentile(multi, 90):.0f}  "
          f"p95 {np.percentile(multi, 95):.0f}  max {multi.max():.0f}")
    for g in (2, 4, 6, 8, 10, 12, 16, 20):
        print(f"  merge_gap {g:2d} joins every fragment of {100 * (multi <= g).mean():5.1f}% of them "
              f"({100 * (1 - (multi > g).sum() / len(links)):5.1f}% of all crops whole)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
