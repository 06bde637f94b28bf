#!/usr/bin/python3
"""train/train.py end to end on real NDSB crops, with a tiny model (seconds per run).

- an interrupted run (--stop-after 1, then --resume) ends with exactly the
  weights of an uninterrupted one;
- --init starts from a checkpoint's weights: with --lr 0 the weights come out
  bit-identical to the checkpoint's (so they were loaded, and nothing else
  was re-initialised over them); with a learning rate they move; a warm
  start's random stream (augmentation, order, dropout) is its own (from the
  init weights) where a cold start's is 0, and the stream changes the
  epoch's order;
- --init refuses a checkpoint of another model, of another split (its
  validation crops would be trained on), and a missing file, each with exit
  status 1 and a message that names the problem;
- --export writes a model folder that holds the checkpoint's network: every
  tensor is the checkpoint's rounded to the export dtype (f16) and nothing
  else, and the exported network's probabilities on random inputs equal the
  checkpoint network's to within f16 rounding (and exactly those of the
  checkpoint's weights rounded to f16);
- a config with `base:` is its base with its own keys replacing the base's
  (train/configs/cpu-refine.yaml = cpu.yaml with init and lr changed); a
  base chain that comes back to itself stops with exit status 1.

Exits 77 (skip) without the NDSB data, 1 on failure.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import yaml

from planktonnet import PlanktonNet, load_model, parse_spec
from planktonnet.data import EpochSampler
from planktonnet.training import TrainConfig

ROOT = os.environ.get("PLANKTON_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SPLIT = os.path.join(ROOT, "train", "splits", "ndsb_seed{seed}.tsv")


def data_dir_or_skip():
    data = os.environ.get("PLANKTON_DATA") or os.path.join(ROOT, "..", "shared", "data", "ndsb")
    if not os.path.isdir(os.path.join(data, "train")):
        print("SKIP: NDSB data not found at %s" % os.path.join(data, "train"))
        sys.exit(77)
    return os.path.join(data, "train")


def tiny_spec(tmp, name, filters):
    """tests/models/daemon_tiny.yaml with the 121 NDSB classes of the shipped spec."""
    with open(os.path.join(ROOT, "tests", "models", "daemon_tiny.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    with open(os.path.join(ROOT, "train", "specs", "ndsb_fast_c4.yaml"), encoding="utf-8") as f:
        spec["classes"] = yaml.safe_load(f)["classes"]
    spec["head"]["layers"][0]["units"] = len(spec["classes"])
    spec["branches"][0]["layers"][1]["filters"] = filters
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    return path


class Runner:
    def __init__(self, data, spec):
        self.base = [sys.executable, os.path.join(ROOT, "train", "train.py"), "--model", spec,
                     "--data", data, "--split", SPLIT, "--seed", "1", "--epochs", "2",
                     "--max-train", "96", "--max-val", "32", "--threads", "1", "--workers", "1",
                     "--time-budget", "0", "--batch-size", "16"]

    def run(self, *args, expect=0, base=True):
        cmd = (self.base if base else self.base[:2]) + list(args)
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if p.returncode != expect:
            raise AssertionError("%s: exit %d (expected %d)\n%s%s" % (
                " ".join(cmd[1:]), p.returncode, expect, p.stdout, p.stderr))
        return p.stdout + p.stderr


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "last.pt"), map_location="cpu")["net"]


def export_round_trip(run_dir, model_dir, check):
    """The exported folder against the run's last.pt (see the module's docstring)."""
    ck = torch.load(os.path.join(run_dir, "last.pt"), map_location="cpu")
    spec = parse_spec(ck["spec_text"], "last.pt")
    net_ck = PlanktonNet(spec).double().eval()
    net_ck.load_state_dict(ck["net"])
    _, net_ex = load_model(model_dir, torch.float64)
    net_ex.eval()
    ex = net_ex.state_dict()
    same_names = set(ex) == set(ck["net"])
    rounded = same_names and all(
        torch.equal(ex[k], ck["net"][k].half().double()) for k in ck["net"])
    check(same_names and rounded, "--export: every tensor is the checkpoint's, rounded to f16")
    torch.manual_seed(7)
    inputs = [torch.rand(*shape, dtype=torch.float64) for shape in net_ck.input_shapes(8)]
    net_r = PlanktonNet(spec).double().eval()
    net_r.load_state_dict({k: v.half().double() for k, v in ck["net"].items()})
    with torch.no_grad():
        p_ck, p_ex, p_r = net_ck(inputs), net_ex(inputs), net_r(inputs)
    d_round = float((p_ex - p_r).abs().max())
    d_ck = float((p_ex - p_ck).abs().max())
    print("  exported vs checkpoint: max |p diff| = %.3g (f16 rounding); vs the checkpoint "
          "rounded to f16: %.3g" % (d_ck, d_round))
    check(d_round == 0.0 and d_ck < 1e-2 and float(p_ck.max()) < 0.999,
          "--export: the exported network's answers are the checkpoint network's")


def max_diff(a, b):
    if a.keys() != b.keys():
        raise AssertionError("checkpoints hold different tensors")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def main():
    data = data_dir_or_skip()
    failures = []

    def check(ok, what):
        print("%s: %s" % ("ok" if ok else "FAIL", what))
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="pd-train-test-") as tmp:
        spec = tiny_spec(tmp, "tiny.yaml", 4)
        other_spec = tiny_spec(tmp, "tiny5.yaml", 5)
        r = Runner(data, spec)
        run_a = os.path.join(tmp, "a")
        r.run("--out", run_a, "--export", os.path.join(run_a, "model"))
        check(all(os.path.isfile(os.path.join(run_a, "model", f))
                  for f in ("model.yaml", "weights.safetensors")), "--export wrote a model folder")
        export_round_trip(run_a, os.path.join(run_a, "model"), check)

        run_b = os.path.join(tmp, "b")
        out = r.run("--out", run_b, "--stop-after", "1")
        check("continue with --resume" in out, "--stop-after 1 says how to continue")
        r.run("--out", run_b, "--resume", base=False)
        d = max_diff(weights(run_a), weights(run_b))
        print("  resumed vs uninterrupted: max |diff| = %g" % d)
        check(d == 0.0, "a resumed run repeats an uninterrupted one exactly")

        ck_a = os.path.join(run_a, "last.pt")
        run_c = os.path.join(tmp, "c")
        out = r.run("--out", run_c, "--init", ck_a, "--lr", "0", "--epochs", "1")
        check("starting from the weights of %s" % ck_a in out, "--init says where it starts")
        d = max_diff(weights(run_a), weights(run_c))
        print("  --init --lr 0 vs the checkpoint: max |diff| = %g" % d)
        check(d == 0.0, "--init loads the checkpoint's weights (lr 0 keeps them bit for bit)")
        # a warm start draws a random stream of its own from the init weights (so it does not
        # repeat the augmentations, order and dropout its init was trained on), a cold start 0
        streams = []
        for run_dir in (run_a, run_c):
            with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
                streams.append(yaml.safe_load(f)["stream"])
        check(streams[0] == 0 and streams[1] not in (0, None)
              and "random stream %d" % streams[1] in out,
              "a warm start has its own random stream (cold %r, warm %r)" % tuple(streams))
        labels = np.arange(64) % 4
        orders = [list(EpochSampler(labels, 1, 0.0, st)) for st in (0, streams[1], streams[1])]
        check(orders[0] != orders[1] and orders[1] == orders[2],
              "the stream changes the epoch's order, and the same stream repeats it")

        run_d = os.path.join(tmp, "d")
        r.run("--out", run_d, "--init", ck_a, "--lr", "0.001", "--epochs", "1")
        d = max_diff(weights(run_a), weights(run_d))
        print("  --init --lr 0.001 vs the checkpoint: max |diff| = %g" % d)
        check(d > 0.0, "--init with a learning rate trains from there")

        out = r.run("--out", os.path.join(tmp, "e"), "--init", ck_a, "--model", other_spec,
                    expect=1)
        check("model.yaml differs" in out and ck_a in out,
              "--init refuses a checkpoint of another model: " + out.strip().splitlines()[-1])

        other_split = os.path.join(tmp, "other_split{seed}.tsv")
        out = r.run("--out", os.path.join(tmp, "f"), "--init", ck_a, "--split", other_split,
                    expect=1)
        check("split" in out and ck_a in out,
              "--init refuses a checkpoint of another split: " + out.strip().splitlines()[-1])

        missing = os.path.join(tmp, "no-such.pt")
        out = r.run("--out", os.path.join(tmp, "g"), "--init", missing, expect=1)
        check(missing in out, "--init names a missing checkpoint: " + out.strip().splitlines()[-1])

        # precision: auto is resolved before training and stored in the run's config (a
        # resumed run keeps it); bf16 under --init --lr 0 keeps the weights bit for bit (the
        # master weights stay fp32); a bad value is refused naming the choices
        run_p = os.path.join(tmp, "p")
        out = r.run("--out", run_p, "--init", ck_a, "--lr", "0", "--epochs", "1",
                    "--precision", "auto")
        with open(os.path.join(run_p, "config.yaml"), encoding="utf-8") as f:
            chosen = yaml.safe_load(f)["precision"]
        check(chosen in ("fp32", "bf16") and ("precision auto" in out),
              "precision auto is resolved (%s) and logged" % chosen)
        run_q = os.path.join(tmp, "q")
        r.run("--out", run_q, "--init", ck_a, "--lr", "0", "--epochs", "1", "--precision", "bf16")
        d = max_diff(weights(run_a), weights(run_q))
        check(d == 0.0, "bf16 autocast keeps fp32 master weights (--lr 0: max |diff| %g)" % d)
        bad = os.path.join(tmp, "bad_precision.yaml")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("precision: fp8\n")
        out = r.run("--config", bad, "--out", os.path.join(tmp, "r"), "--max-train", "16",
                    expect=1, base=False)
        check("fp8" in out and "fp32, bf16, auto" in out,
              "an unknown precision is refused naming the choices: " + out.strip().splitlines()[-1])

        configs = os.path.join(ROOT, "train", "configs")
        refine = TrainConfig.from_file(os.path.join(configs, "cpu-refine.yaml")).to_dict()
        stage1 = TrainConfig.from_file(os.path.join(configs, "cpu.yaml")).to_dict()
        changed = sorted(k for k in stage1 if refine[k] != stage1[k])
        print("  cpu-refine.yaml differs from cpu.yaml in: %s" % ", ".join(changed))
        check(changed == ["init", "lr"] and refine["lr"] == stage1["lr"] / 2,
              "base: cpu-refine.yaml is cpu.yaml with init and lr (half) changed")
        for name, base in (("loop_a.yaml", "loop_b.yaml"), ("loop_b.yaml", "loop_a.yaml")):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write("base: %s\nepochs: 3\n" % base)
        out = r.run("--config", os.path.join(tmp, "loop_a.yaml"), "--out", os.path.join(tmp, "h"),
                    expect=1, base=False)
        check("comes back to itself" in out and "loop_a.yaml" in out,
              "a base chain that loops is refused: " + out.strip().splitlines()[-1])

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
