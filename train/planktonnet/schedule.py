"""Learning-rate schedule: linear warmup then cosine decay, on a progress in [0, 1].

Progress is the fraction of the planned optimizer steps done, or, with a
time budget, the larger of that and the fraction of the budget spent; the
run ends at progress 1. So a run on a machine that turns out slower (or is
shared) still anneals fully and ends on time, with fewer epochs.
"""

from __future__ import annotations

import math
from typing import Optional


def lr_at(progress: float, peak: float, warmup: float = 0.03,
          final_fraction: float = 0.01) -> float:
    """peak * linear ramp over [0, warmup), then cosine from peak to peak * final_fraction."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return peak * max(p / warmup, 0.01)
    t = (p - warmup) / max(1.0 - warmup, 1e-12)
    lo = peak * final_fraction
    return lo + 0.5 * (peak - lo) * (1.0 + math.cos(math.pi * t))


def progress(step: int, total_steps: int, elapsed_s: float, budget_s: Optional[float]) -> float:
    """max(step / total_steps, elapsed / budget) (the time term only with a budget)."""
    p = step / max(total_steps, 1)
    if budget_s:
        p = max(p, elapsed_s / budget_s)
    return p
