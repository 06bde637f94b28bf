#!/usr/bin/python3
"""bench/engine_torch.py MODEL_DIR [--batch 64] [--threads 2] [--iters 10] [--warmup 2]

The PyTorch side of bench/engine: the reference network (train/planktonnet)
built from the same model folder, float32, eval mode, inference_mode, run on
standard-normal inputs of the model's shapes. It times a short trial in both
memory formats (contiguous NCHW and channels_last), keeps the faster, then
times --iters batches. The last line is machine-readable:
torch_images_per_s=<x>
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))

import torch  # noqa: E402

from planktonnet import load_model  # noqa: E402


def make_inputs(net, batch, fmt, gen):
    xs = []
    for shape in net.input_shapes(batch):
        x = torch.randn(*shape, generator=gen)
        if len(shape) == 4 and fmt == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        xs.append(x)
    return xs


def timed(net, inputs, iters, warmup):
    """Seconds per batch of each timed iteration."""
    times = []
    with torch.inference_mode():
        for k in range(warmup + iters):
            t0 = time.perf_counter()
            net(inputs)
            dt = time.perf_counter() - t0
            if k >= warmup:
                times.append(dt)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--format", choices=("auto", "contiguous", "channels_last"), default="auto",
                    help="memory format (auto: time both briefly, keep the faster)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)

    spec, net = load_model(a.model_dir, torch.float32)
    gen = torch.Generator().manual_seed(0)
    formats = ["contiguous", "channels_last"] if a.format == "auto" else [a.format]
    trial = {}
    if len(formats) > 1:
        for fmt in formats:
            net = net.to(memory_format=torch.channels_last if fmt == "channels_last"
                         else torch.contiguous_format)
            trial[fmt] = statistics.median(timed(net, make_inputs(net, a.batch, fmt, gen), 3, 1))
        fmt = min(trial, key=trial.get)
    else:
        fmt = formats[0]
    net = net.to(memory_format=torch.channels_last if fmt == "channels_last"
                 else torch.contiguous_format)
    times = timed(net, make_inputs(net, a.batch, fmt, gen), a.iters, a.warmup)
    med = statistics.median(times)
    print("torch %s: model %s (%d params, %.1f MFLOP/image), batch %d, %d threads, %s%s" % (
        torch.__version__, spec.name, spec.param_count(), spec.flops_per_image() / 1e6, a.batch,
        a.threads, fmt, "" if not trial else " (trial s/batch: %s)" % ", ".join(
            "%s %.3f" % kv for kv in trial.items())))
    print("  median %.4f s/batch (min %.4f, max %.4f) over %d iters; %.2f GFLOP/s" % (
        med, min(times), max(times), len(times), spec.flops_per_image() * a.batch / med / 1e9))
    print("torch_images_per_s=%.2f" % (a.batch / med))


if __name__ == "__main__":
    main()
