#!/usr/bin/python3
"""make_random_model.py SPEC_YAML OUT_DIR [--seed N] [--dtype f32|f16]

Writes a model folder (model.yaml + weights.safetensors) with random weights
for a model.yaml, for tests and benchmarks until a trained model ships.

The weights are not just He-initialised: He init keeps the variance through
leaky ReLUs and through the roll's channel growth (fan_in counts the rolled
channels), but max pooling, maxout and cyclic pooling shift the scale, and a
random net's logits are mostly an image-independent offset, so its top-1 would
barely change from image to image. So after He init every conv/dense layer
is calibrated in one forward pass over synthetic plankton-like crops (dark
blobs and strands on a white background, 21..420 px, run through the real
preprocessing warp): each output channel's pre-activation is shifted and
scaled to mean 0 and standard deviation 1 over the calibration set (plus a
small random bias, so bias handling is exercised), and the final logits get a
standard deviation of --logit-std (default 2.0). Activations stay O(1)
everywhere, and the probabilities are spread: neither saturated nor uniform,
with a top-1 that varies across inputs. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch

from planktonnet import PlanktonNet, load_spec, write_model
from planktonnet.spec import ModelSpec
from planktonnet.warp import preprocess_batch


def synthetic_crops(rng: np.random.Generator, n: int):
    """n gray uint8 crops that look roughly like NDSB crops (organism dark on white 255)."""
    crops = []
    for _ in range(n):
        w = int(round(math.exp(rng.uniform(math.log(24), math.log(420)))))
        h = int(np.clip(round(w * math.exp(rng.normal(0.0, 0.45))), 21, 428))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.full((h, w), 255.0)
        for _ in range(int(rng.integers(1, 6))):
            cx, cy = rng.uniform(0.3, 0.7) * (w - 1), rng.uniform(0.3, 0.7) * (h - 1)
            thin = rng.random() < 0.3
            rx = rng.uniform(0.15, 0.5) * w
            ry = rng.uniform(0.02, 0.08) * h if thin else rng.uniform(0.15, 0.5) * h
            rx, ry = max(rx, 1.5), max(ry, 1.5)
            th = rng.uniform(0, math.pi)
            dx, dy = xx - cx, yy - cy
            u = (dx * math.cos(th) + dy * math.sin(th)) / rx
            v = (-dx * math.sin(th) + dy * math.cos(th)) / ry
            r2 = u * u + v * v
            mask = np.clip((1.0 - r2) * 4.0, 0.0, 1.0)       # soft edge
            dark = rng.uniform(40, 200) * (0.6 + 0.4 * rng.random((h, w)))
            if rng.random() < 0.4:                           # a ring (membrane-like)
                mask *= np.clip((r2 - 0.5) * 6.0, 0.0, 1.0)
            img -= mask * dark
        img += rng.normal(0.0, 2.0, size=img.shape)
        crops.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
    return crops


def he_init(net: PlanktonNet, spec: ModelSpec, gen: torch.Generator) -> None:
    """N(0, gain^2 / fan_in) weights (gain = sqrt(2 / (1 + slope^2)) before a leaky ReLU), N(0, 0.1^2) biases."""
    mods = [m for ml in net.branch_layers for m in ml] + list(net.head_layers)
    for l, m in zip(spec.all_layers(), mods):
        if not l.has_weights:
            continue
        fan_in = m.weight[0].numel()    # rolled channels included
        gain = math.sqrt(2.0 / (1.0 + l.slope ** 2)) if l.activation == "leaky_relu" else 1.0
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                           * (gain / math.sqrt(fan_in)))
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen, dtype=torch.float64) * 0.1)


def _calibrate_layer(m, x, gen, scale=1.0, bias_noise=0.1):
    """Shift/scale each output channel of m's pre-activation to mean 0, std `scale` on x."""
    pre = m.preactivation(x)
    dims = [0] + list(range(2, pre.dim()))
    mean = pre.mean(dim=dims)
    std = pre.std(dim=dims)
    std = torch.clamp(std, min=max(1e-3 * float(std.median()), 1e-12))
    noise = torch.randn(mean.shape, generator=gen, dtype=torch.float64).to(mean.dtype) * bias_noise
    shape = (-1,) + (1,) * (m.weight.dim() - 1)
    with torch.no_grad():
        m.weight.mul_((scale / std).reshape(shape))
        m.bias.copy_((m.bias - mean) * (scale / std) + noise * scale)


def calibrate(net: PlanktonNet, spec: ModelSpec, inputs, gen: torch.Generator,
              logit_std: float = 2.0) -> torch.Tensor:
    """One pass over calibration inputs, layer by layer; returns the final probabilities."""
    net.eval()
    with torch.no_grad():
        outs = []
        for b, br in enumerate(spec.branches):
            x = inputs[b]
            for l, m in zip(br.layers, net.branch_layers[b]):
                if l.has_weights:
                    _calibrate_layer(m, x, gen)
                x = m(x)
            outs.append(x.reshape(x.shape[0], -1))
        x = torch.cat(outs, dim=1)
        n_head = len(spec.head)
        for k, (l, m) in enumerate(zip(spec.head, net.head_layers)):
            if l.has_weights:
                last = k == n_head - 2        # the layer that gives the logits
                _calibrate_layer(m, x, gen, logit_std if last else 1.0)
            x = m(x)
    return x


def make_random_model(spec_path: str, out_dir: str, seed: int = 0, dtype: str = "f32",
                      n_calib: int = 48, logit_std: float = 2.0, verbose: bool = True):
    """Writes the folder; returns (spec, net) with the weights as written (f16 not yet rounded)."""
    spec = load_spec(spec_path)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    net = PlanktonNet(spec).eval()
    he_init(net, spec, gen)
    crops = synthetic_crops(rng, n_calib)
    inputs = [torch.from_numpy(a) for a in preprocess_batch(spec, crops)]
    probs = calibrate(net, spec, inputs, gen, logit_std)
    write_model(out_dir, spec, net, dtype=dtype,
                metadata={"weights": "random (make_random_model.py, seed %d)" % seed})
    if verbose:
        top = probs.argmax(dim=1)
        pmax = probs.max(dim=1).values
        print("%s: %s, %d params, %.1f MFLOP/image, %s weights; calibration on %d synthetic "
              "crops: max prob median %.3f (range %.3f..%.3f), %d distinct top-1 classes"
              % (out_dir, spec.name, spec.param_count(), spec.flops_per_image() / 1e6, dtype,
                 n_calib, float(pmax.median()), float(pmax.min()), float(pmax.max()),
                 len(set(top.tolist()))))
    return spec, net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", help="model.yaml (a spec; weights are not needed)")
    ap.add_argument("out_dir", help="model folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--calib", type=int, default=48, help="synthetic calibration crops (48)")
    ap.add_argument("--logit-std", type=float, default=2.0,
                    help="standard deviation of each logit over the calibration crops (2.0)")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    try:
        make_random_model(a.spec, a.out_dir, a.seed, a.dtype, a.calib, a.logit_std)
    except (OSError, ValueError) as e:
        print("make_random_model: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
