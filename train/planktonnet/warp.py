"""The preprocessing of models/FORMAT.md, in numpy float64.

One affine warp per image branch: branch rescale, centring and augmentation
(zoom, stretch, shear, rotation, flip, translation) folded into one 2x3
matrix; bilinear sampling with `background` for neighbours outside the crop;
inversion; normalisation. Plus the size features. Results are float32, the
engine's input slots (kernels/cpu/pd_warp.c does the same arithmetic).

    slots = preprocess(spec, gray)        # gray: uint8 [h, w]
    # slots[b]: [size, size] float32 for image branches, [n_features] for size features
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .spec import BranchInput, InputSpec, ModelSpec


@dataclass
class Augment:
    """One transform; the defaults are the identity (serving)."""
    zoom: float = 1.0
    rotation_deg: float = 0.0
    shear_deg: float = 0.0
    tx: float = 0.0          # output pixels
    ty: float = 0.0
    stretch: float = 1.0
    flip: bool = False


IDENTITY = Augment()


def branch_scale(inp: BranchInput, w: int, h: int) -> float:
    """Source pixels per output pixel."""
    if inp.rescale == "fit":
        return max(w, h) / inp.fit_size
    return inp.factor


def affine_matrix(inp: BranchInput, w: int, h: int, aug: Optional[Augment] = None) -> np.ndarray:
    """2x3 float64 A with source point q = A @ (i, j, 1) for output column i, row j.

    FORMAT.md's steps: o = (i, j) - c with c = (S-1)/2; p = o - t; p /= z;
    p = (p.x / sqrt(t), p.y * sqrt(t)); p.x += tan(shear) p.y; p = rot(theta) p;
    if flip: p.x = -p.x; q = ((w-1)/2, (h-1)/2) + s p. All linear after the
    translation, so q = M (o - t) + centre with M = s Flip Rot Shear Stretch / z.
    """
    a = aug or IDENTITY
    s = branch_scale(inp, w, h)
    st = math.sqrt(a.stretch)
    th, sh = math.radians(a.rotation_deg), math.radians(a.shear_deg)
    stretch = np.array([[1.0 / st, 0.0], [0.0, st]])
    shear = np.array([[1.0, math.tan(sh)], [0.0, 1.0]])
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    flip = np.diag([-1.0 if a.flip else 1.0, 1.0])
    M = s * (flip @ rot @ shear @ stretch) / a.zoom
    c = (inp.size - 1) / 2.0
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    offset = centre - M @ np.array([c + a.tx, c + a.ty])
    return np.hstack([M, offset[:, None]])


def sample_bilinear(gray: np.ndarray, qx: np.ndarray, qy: np.ndarray, background: float) -> np.ndarray:
    """Bilinear samples of gray (h x w) at (qx, qy); neighbours outside the crop read background."""
    h, w = gray.shape
    img = gray.astype(np.float64)
    x0 = np.floor(qx)
    y0 = np.floor(qy)
    ax, ay = qx - x0, qy - y0
    # floor of huge coordinates: keep them far outside but in int range
    x0 = np.clip(x0, -2.0, w + 1.0).astype(np.int64)
    y0 = np.clip(y0, -2.0, h + 1.0).astype(np.int64)

    def at(yy, xx):
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        v = img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
        return np.where(inside, v, background)

    v00, v10 = at(y0, x0), at(y0, x0 + 1)
    v01, v11 = at(y0 + 1, x0), at(y0 + 1, x0 + 1)
    top = v00 + ax * (v10 - v00)
    bottom = v01 + ax * (v11 - v01)
    return top + ay * (bottom - top)


def warp_branch(inp: BranchInput, inspec: InputSpec, gray: np.ndarray,
                aug: Optional[Augment] = None) -> np.ndarray:
    """[size, size] float32 input of an image branch for one crop (gray uint8 [h, w])."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.shape[0] < 1 or gray.shape[1] < 1:
        raise ValueError("expected a 2-d gray crop, got shape %s" % (gray.shape,))
    h, w = gray.shape
    A = affine_matrix(inp, w, h, aug)
    S = inp.size
    jj, ii = np.meshgrid(np.arange(S, dtype=np.float64), np.arange(S, dtype=np.float64),
                         indexing="ij")           # jj = row, ii = column
    qx = A[0, 0] * ii + A[0, 1] * jj + A[0, 2]
    qy = A[1, 0] * ii + A[1, 1] * jj + A[1, 2]
    v = sample_bilinear(gray, qx, qy, inspec.background)
    if inspec.invert:
        v = 255.0 - v
    return ((v / 255.0 - inspec.mean) / inspec.std).astype(np.float32)


def size_features(inp: BranchInput, w: int, h: int) -> np.ndarray:
    """[n_features] float32 (models/FORMAT.md): log_width = ln w, log_height = ln h,
    log_area = ln(w h), aspect = ln(w/h), log_long = ln max(w, h), log_short = ln min(w, h),
    log_elongation = ln(max/min)."""
    lo, hi = min(w, h), max(w, h)
    table = {"log_width": math.log(w), "log_height": math.log(h), "log_area": math.log(w * h),
             "aspect": math.log(w / h), "log_long": math.log(hi), "log_short": math.log(lo),
             "log_elongation": math.log(hi / lo)}
    return np.array([table[f] for f in inp.features], dtype=np.float32)


def preprocess(spec: ModelSpec, gray: np.ndarray, aug: Optional[Augment] = None) -> List[np.ndarray]:
    """Every branch's input for one crop, in branch order."""
    h, w = np.asarray(gray).shape
    return [warp_branch(b.input, spec.input, gray, aug) if b.input.kind == "image"
            else size_features(b.input, w, h) for b in spec.branches]


def preprocess_batch(spec: ModelSpec, grays: Sequence[np.ndarray],
                     augs: Optional[Sequence[Optional[Augment]]] = None) -> List[np.ndarray]:
    """Branch inputs for a batch: [n, 1, S, S] for image branches, [n, F] for size features."""
    per = [preprocess(spec, g, augs[k] if augs else None) for k, g in enumerate(grays)]
    out = []
    for b, br in enumerate(spec.branches):
        a = np.stack([p[b] for p in per])
        out.append(a[:, None] if br.input.kind == "image" else a)
    return out
