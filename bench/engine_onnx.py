#!/usr/bin/python3
"""bench/engine_onnx.py: the ONNX side of bench/engine (ONNX Runtime, OpenVINO).

  engine_onnx.py export MODEL_DIR OUT.onnx --batch N
      The reference network (train/planktonnet) in eval mode, in its
      export-friendly form (planktonnet.layers.set_export_friendly: no
      rot90, no in-place writes), exported by torch.onnx at batch N; then
      put in eval mode again (the exporter leaves it in training mode).
      Writes OUT.onnx and OUT.npz (standard-normal inputs and PyTorch's eval
      probabilities for them).

  engine_onnx.py time OUT.onnx --runtime ort|openvino [--precision f32|bf16]
                 [--threads 2] [--iters 10] [--warmup 2]
      Loads the graph into the runtime with that many threads (ORT: intra-op
      threads, one inter-op; OpenVINO: INFERENCE_NUM_THREADS, one stream,
      the precision as INFERENCE_PRECISION_HINT), checks its probabilities
      against OUT.npz's PyTorch ones (max |diff| <= 1e-4 in f32, 2e-2 with
      the bf16 hint; exit 1 otherwise), then times --iters batches.
      Last line: images_per_s=<x>

Runs in the venv bench/engine makes (.venv-bench: numpy<2, onnxruntime,
openvino from PyPI, Debian's torch through --system-site-packages).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))


def cmd_export(a):
    import torch
    from planktonnet import load_model
    from planktonnet.layers import set_export_friendly

    torch.manual_seed(0)
    spec, net = load_model(a.model_dir, torch.float32)
    net.eval()
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(*s, generator=gen) for s in net.input_shapes(a.batch)]
    with torch.no_grad():
        ref = net(inputs)
    set_export_friendly(net)
    names = ["in%d" % i for i in range(len(inputs))]
    torch.onnx.export(net, (inputs, {}), a.out, opset_version=13, input_names=names,
                      output_names=["probs"])
    net.eval()  # torch 1.13's exporter leaves the module in training mode
    with torch.no_grad():
        again = net(inputs)
    diff = float((again - ref).abs().max())
    if diff > 0:
        sys.exit("engine_onnx: the export-friendly form differs from the original by %.3g" % diff)
    np.savez(os.path.splitext(a.out)[0] + ".npz", probs=ref.numpy(),
             **{n: x.numpy() for n, x in zip(names, inputs)})
    print("exported %s (batch %d, %d inputs, %.1f MFLOP/image) to %s" % (
        spec.name, a.batch, len(inputs), spec.flops_per_image() / 1e6, a.out))


def load_ort(path, threads, precision):
    import onnxruntime as ort
    if precision != "f32":
        sys.exit("engine_onnx: ONNX Runtime's CPU provider runs the graph as exported (f32)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(feeds):
        return sess.run(["probs"], feeds)[0]
    return run, "onnxruntime %s (CPUExecutionProvider, %d intra-op threads)" % (
        ort.__version__, threads)


def load_openvino(path, threads, precision):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    cfg = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
           "INFERENCE_PRECISION_HINT": precision}
    compiled = core.compile_model(model, "CPU", cfg)
    request = compiled.create_infer_request()
    used = compiled.get_property("INFERENCE_PRECISION_HINT")
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")

    def run(feeds):
        request.infer(feeds)
        return request.get_output_tensor(0).data.copy()
    return run, "openvino %s (CPU, %d threads, precision hint %s -> runs %s; CPU capabilities %s)" % (
        ov.__version__, threads, precision, used, " ".join(caps))


def cmd_time(a):
    data = np.load(os.path.splitext(a.onnx)[0] + ".npz")
    feeds = {k: data[k] for k in data.files if k != "probs"}
    ref = data["probs"]
    loader = load_ort if a.runtime == "ort" else load_openvino
    run, desc = loader(a.onnx, a.threads, a.precision)
    out = run(feeds)
    diff = float(np.abs(out - ref).max())
    tol = 1e-4 if a.precision == "f32" else 2e-2
    print("%s: max |probs - PyTorch eval| = %.3g (tolerance %.0e)" % (desc, diff, tol))
    if not diff <= tol:
        sys.exit("engine_onnx: %s disagrees with PyTorch by %.3g > %.0e" % (a.runtime, diff, tol))
    batch = ref.shape[0]
    times = []
    for k in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        run(feeds)
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print("  median %.4f s/batch (min %.4f, max %.4f) over %d iters" % (
        med, min(times), max(times), len(times)))
    print("images_per_s=%.2f" % (batch / med))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("model_dir")
    e.add_argument("out")
    e.add_argument("--batch", type=int, default=64)
    t = sub.add_parser("time")
    t.add_argument("onnx")
    t.add_argument("--runtime", choices=("ort", "openvino"), required=True)
    t.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--iters", type=int, default=10)
    t.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    (cmd_export if a.cmd == "export" else cmd_time)(a)


if __name__ == "__main__":
    main()
