#!/usr/bin/python3
"""evaluate.py: validation metrics of a model folder (or a training checkpoint) in PyTorch.

    /usr/bin/python3 train/evaluate.py models/ndsb-seed \\
        [--split train/splits/ndsb_seed1.tsv] [--data ../shared/data/ndsb/train] \\
        [--side val] [--probs FILE] [--json FILE] [--threads 2] [--workers 1]

Runs the network on every crop of one side of a split file (default: val)
with the serving preprocessing (identity transform, no test-time
augmentation), exactly as the C engine's `planktond-model run` does without
TTA, and prints n, accuracy, top-5 accuracy and the competition's log loss
(probabilities clipped to [1e-15, 1 - 1e-15], rows renormalised).
Model folders are evaluated with the weights as stored (F16 widened), so the
figure is the one the C engine should reproduce. --probs writes the
probabilities as raw float32 [n, classes] in split-file order (the layout of
`planktond-model run --probs`), for a crop-by-crop comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from planktonnet import PlanktonNet, load_model, parse_spec  # noqa: E402
from planktonnet.data import CropDataset, class_index, read_split, spread  # noqa: E402
from planktonnet.metrics import summary  # noqa: E402
from planktonnet.training import load_checkpoint, make_loader, predict  # noqa: E402

DEFAULT_DATA = "../shared/data/ndsb/train"
DEFAULT_SPLIT = "train/splits/ndsb_seed1.tsv"


def load_any(path: str):
    """(spec, eval-mode net) from a model folder or a train.py checkpoint (.pt)."""
    if os.path.isdir(path):
        return load_model(path)
    ck = load_checkpoint(path)
    spec = parse_spec(ck["spec_text"], path)
    net = PlanktonNet(spec)
    net.load_state_dict(ck["net"])
    return spec, net.float().eval()


def evaluate(model: str, split_path: str, data: str, side: str = "val", workers: int = 1,
             batch_size: int = 128, device: torch.device = torch.device("cpu"),
             limit: int = 0):
    """(metrics dict, probabilities [n, classes], labels [n]) for one side of the split
    (`limit` rows spread over it when limit > 0, as `planktond-model eval --limit`)."""
    spec, net = load_any(model)
    net.to(device)
    split = read_split(split_path)
    rows = split.val if side == "val" else split.train
    rows = spread(rows, limit)
    index = class_index(spec, [lab for _, lab in rows])
    ds = CropDataset(data, rows, spec, index, None)
    loader = make_loader(ds, batch_size, workers, None, device)
    probs, labels = predict(net, loader, device)
    return summary(probs, labels), probs, labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model folder (model.yaml + weights) or train.py checkpoint")
    ap.add_argument("--split", default=DEFAULT_SPLIT, help="split TSV (%s)" % DEFAULT_SPLIT)
    ap.add_argument("--data", default=DEFAULT_DATA, help="data root (%s)" % DEFAULT_DATA)
    ap.add_argument("--side", choices=("val", "train"), default="val")
    ap.add_argument("--probs", help="write float32 probabilities [n, classes] here")
    ap.add_argument("--json", help="write the metrics as JSON here")
    ap.add_argument("--limit", type=int, default=0,
                    help="N crops spread over the side (as planktond-model eval --limit N)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()
    try:
        m, probs, _ = evaluate(a.model, a.split, a.data, a.side, a.workers, a.batch_size, device,
                                 a.limit)
    except (OSError, ValueError) as e:
        print("evaluate: %s" % e, file=sys.stderr)
        return 1
    m.update({"model": a.model, "split": a.split, "side": a.side, "tta": False,
              "seconds": round(time.time() - t0, 1)})
    print("%s on %s (%s, %d crops, no TTA): accuracy %.2f%%  top-5 %.2f%%  log loss %.4f  (%.0fs)"
          % (a.model, a.split, a.side, m["n"], 100 * m["accuracy"], 100 * m["top5"],
             m["log_loss"], m["seconds"]))
    if a.probs:
        probs.astype("<f4").tofile(a.probs)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(m, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
