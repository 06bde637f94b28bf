"""Random training augmentation: one affine transform per crop.

The transform is a warp.Augment (zoom, rotation, shear, translation, stretch,
flip) that warp.preprocess folds into each branch's rescale, so training sees
exactly the C engine's warp (models/FORMAT.md "Preprocessing") and every
branch of a crop sees the same transform. Flips are drawn only when the
model's symmetry allows them (none or d4); a C4 model must tell mirrored
classes apart, so it never sees a flipped crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

from .warp import Augment


@dataclass
class AugmentConfig:
    """Ranges of the random transform (the Deep Sea team used zoom 1.6,
    shear 20, translate 10 (at 95 px), stretch 1.3 for long runs)."""
    zoom: float = 1.3            # log-uniform in [1/zoom, zoom]
    rotation: float = 360.0      # uniform in [0, rotation) degrees
    shear: float = 15.0          # uniform in [-shear, shear] degrees
    translate: float = 5.0       # uniform in [-translate, translate] output pixels, each axis
    stretch: float = 1.2         # log-uniform in [1/stretch, stretch]
    flip: bool = True            # honoured only where the symmetry allows flips

    @classmethod
    def from_dict(cls, d: Mapping) -> "AugmentConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError("augment: unknown key(s) %s (known: %s)" % (", ".join(unknown),
                                                                         ", ".join(sorted(names))))
        return cls(**dict(d))


class Augmenter:
    """Callable rng -> Augment for one model symmetry; picklable for worker processes."""

    def __init__(self, cfg: AugmentConfig, symmetry: str):
        self.cfg = cfg
        self.flip = bool(cfg.flip) and symmetry in ("none", "d4")

    def __call__(self, rng: np.random.Generator) -> Augment:
        c = self.cfg
        lz, ls = math.log(max(c.zoom, 1.0)), math.log(max(c.stretch, 1.0))
        return Augment(
            zoom=math.exp(rng.uniform(-lz, lz)),
            rotation_deg=rng.uniform(0.0, c.rotation),
            shear_deg=rng.uniform(-c.shear, c.shear),
            tx=rng.uniform(-c.translate, c.translate),
            ty=rng.uniform(-c.translate, c.translate),
            stretch=math.exp(rng.uniform(-ls, ls)),
            flip=bool(self.flip and rng.random() < 0.5))
