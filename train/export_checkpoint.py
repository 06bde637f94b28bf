#!/usr/bin/python3
"""export_checkpoint.py CHECKPOINT OUT_DIR [--dtype f16|f32]: a train.py checkpoint
(RUN/last.pt or RUN/epoch_NNN.pt) as a model folder (model.yaml + weights.safetensors)."""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from planktonnet.training import export_checkpoint  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=("f16", "f32"), help="default: the run's export_dtype")
    a = ap.parse_args(argv)
    try:
        st = export_checkpoint(a.checkpoint, a.out_dir, a.dtype)
    except (OSError, ValueError) as e:
        print("export_checkpoint: %s" % e, file=sys.stderr)
        return 1
    print("%s: epoch %d, step %d -> %s" % (a.checkpoint, st.epoch, st.step, a.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
