#!/usr/bin/python3
"""train.py: train a planktond model (models/FORMAT.md) on a class-folder tree.

    /usr/bin/python3 train/train.py --config train/configs/cpu.yaml --out /tmp/run \\
        [--resume] [--export models/ndsb-seed] [--epochs N] [--time-budget MIN] ...

- The architecture is a model.yaml (config key `model`); its `classes` must
  name every class folder of the data tree (`<data>/<class>/*.jpg|png|tif`).
- The stratified train/validation split is written to the config's `split`
  (default train/splits/ndsb_seed<SEED>.tsv) and reused if it exists.
- Training augmentation: one random affine transform per crop (zoom,
  rotation, shear, translation, stretch; flips only where the symmetry allows),
  folded into each branch's rescale by the engine's own warp (warp.py).
- Decoding and warping run in DataLoader worker processes, streaming from disk.
- After every epoch: one progress line (train loss, val loss, val accuracy,
  epoch time, ETA) and a checkpoint OUT/last.pt (plus OUT/epoch_NNN.pt);
  --resume continues from OUT/last.pt with the run's own config (only
  --threads, --workers, --log-every may change). CUDA is used when torch
  sees a GPU.
- --export DIR writes the trained model folder (model.yaml + weights).

Run from the repository root (relative paths in configs are relative to it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from planktonnet import PlanktonNet, parse_spec, safetensors_io  # noqa: E402
from planktonnet.augment import Augmenter  # noqa: E402
from planktonnet.data import (CropDataset, EpochSampler, class_index,  # noqa: E402
                              load_or_make_split, spread)
from planktonnet.export import WEIGHTS_NAME  # noqa: E402
from planktonnet.metrics import summary  # noqa: E402
from planktonnet.training import (TrainConfig, TrainState, export_trained,  # noqa: E402
                                  init_weights, load_checkpoint, make_loader, make_optimizer,
                                  predict, resolve_precision, save_checkpoint, train_epoch)


def log(msg: str) -> None:
    print("%s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def fmt_min(s: float) -> str:
    return "%dm%02ds" % (int(s) // 60, int(s) % 60)


def load_config(args) -> TrainConfig:
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    for key in ("model", "data", "split", "seed", "init", "epochs", "batch_size", "lr", "workers",
                "threads", "log_every", "balance_power", "precision", "max_train", "max_val"):
        v = getattr(args, key)
        if v is not None:
            setattr(cfg, key, v)
    if args.time_budget is not None:
        cfg.time_budget_min = args.time_budget if args.time_budget > 0 else None
    return cfg


def _check_split(source: str, old: TrainConfig, cfg: TrainConfig) -> None:
    same = os.path.realpath(old.split_path()) == os.path.realpath(cfg.split_path())
    if not same or (old.seed, old.val_fraction) != (cfg.seed, cfg.val_fraction):
        raise ValueError("%s: trained on split %s (seed %d), this run uses %s (seed %d)" % (
            source, old.split_path(), old.seed, cfg.split_path(), cfg.seed))


def init_stream(init: "str | None") -> int:
    """The random stream of a run from `init` (TrainConfig.stream): 0 without one, else 40 bits
    of the sha256 of its weights (a model folder's weights.safetensors or a checkpoint)."""
    if not init:
        return 0
    path = os.path.join(init, WEIGHTS_NAME) if os.path.isdir(init) else init
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return int.from_bytes(h.digest()[:5], "big") or 1


def warm_start(net: PlanktonNet, cfg: TrainConfig, spec_text: str) -> None:
    """Load cfg.init's weights into net. cfg.init is a checkpoint (it must come from the same
    model.yaml) or a model folder (its tensors must have the names and shapes of this model's;
    its model.yaml may differ elsewhere, e.g. in the size features' names). Either must come from
    the same split: a different split would put the new run's validation crops into its training.
    A model folder's split is read from the run config in its weights' metadata (train.py writes
    it); a folder without one is refused."""
    if os.path.isdir(cfg.init):
        path = os.path.join(cfg.init, WEIGHTS_NAME)
        tensors, meta = safetensors_io.read(path)
        if "config" not in meta:
            raise ValueError("%s: no training config in its metadata, so its split cannot be "
                             "checked (only folders that train.py exported can warm-start)" % path)
        _check_split(cfg.init, TrainConfig.from_dict(json.loads(meta["config"])), cfg)
        want = net.state_dict()
        for name, t in want.items():
            if name not in tensors:
                raise ValueError("%s: has no tensor '%s' (this model needs it)" % (path, name))
            if tuple(tensors[name].shape) != tuple(t.shape):
                raise ValueError("%s: tensor '%s' is %s, this model's is %s" % (
                    path, name, list(tensors[name].shape), list(t.shape)))
        extra = sorted(set(tensors) - set(want))
        if extra:
            raise ValueError("%s: tensor '%s' is not in this model" % (path, extra[0]))
        net.load_state_dict({k: torch.from_numpy(np.asarray(tensors[k], dtype=np.float32))
                             for k in want})
        return
    init = load_checkpoint(cfg.init)
    if init["spec_text"] != spec_text:
        raise ValueError("%s: its model.yaml differs from %s" % (cfg.init, cfg.model))
    _check_split(cfg.init, TrainConfig.from_dict(init["config"]), cfg)
    net.load_state_dict(init["net"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="training config YAML (train/configs/*.yaml)")
    ap.add_argument("--out", required=True, help="run folder: checkpoints and config")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--export", metavar="DIR", help="write the model folder here at the end")
    ap.add_argument("--model", help="model.yaml (architecture and classes)")
    ap.add_argument("--data", help="class-folder tree")
    ap.add_argument("--split", help="split TSV path ({seed} is replaced)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--init", metavar="CHECKPOINT|MODEL_DIR",
                    help="start from the weights of this checkpoint or exported model folder, "
                    "with a fresh optimizer and schedule")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--time-budget", type=float, metavar="MIN",
                    help="anneal and stop within MIN minutes of training (0 = no budget)")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                    help="bf16 autocast (fp32 master weights and loss), or auto: bf16 where the "
                    "CPU has bf16 instructions and a timed step is faster")
    ap.add_argument("--log-every", type=int)
    ap.add_argument("--balance-power", type=float)
    ap.add_argument("--stop-after", type=int, metavar="N",
                    help="leave after N epochs in this session (continue with --resume)")
    ap.add_argument("--max-train", type=int,
                    help="use N training crops spread over the split (smoke tests)")
    ap.add_argument("--max-val", type=int, help="use N validation crops spread over the split")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    last_path = os.path.join(args.out, "last.pt")
    ck = None
    if args.resume:
        if not os.path.exists(last_path):
            print("train: --resume but %s does not exist" % last_path, file=sys.stderr)
            return 1
        ck = load_checkpoint(last_path)
        cfg = TrainConfig.from_dict(ck["config"])
        for key in ("workers", "threads", "log_every"):      # these do not change the result
            if getattr(args, key) is not None:
                setattr(cfg, key, getattr(args, key))
        log("resuming %s (epoch %d, step %d)" % (last_path, ck["state"]["epoch"],
                                                 ck["state"]["step"]))
    else:
        try:
            cfg = load_config(args)
        except (OSError, ValueError, yaml.YAMLError) as e:
            print("train: %s" % e, file=sys.stderr)
            return 1
    torch.set_num_threads(max(1, cfg.threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)

    if ck is not None:
        spec_text = ck["spec_text"]
    else:
        with open(cfg.model, encoding="utf-8") as f:
            spec_text = f.read()
    spec = parse_spec(spec_text, cfg.model)
    split = load_or_make_split(cfg.split_path(), cfg.data, cfg.seed, cfg.val_fraction, log)
    index = class_index(spec, [lab for _, lab in split.train + split.val])
    train_rows = spread(split.train, cfg.max_train)
    val_rows = spread(split.val, cfg.max_val)

    if cfg.stream is None:   # resolved once: a resumed run keeps its checkpoint's
        try:
            cfg.stream = init_stream(cfg.init)
        except OSError as e:
            print("train: init: %s" % e, file=sys.stderr)
            return 1
    if cfg.stream:
        log("random stream %d (from the init weights: augmentations none of their training saw)"
            % cfg.stream)
    train_ds = CropDataset(cfg.data, train_rows, spec, index, Augmenter(cfg.augment, spec.symmetry),
                           cfg.seed, cfg.stream)
    val_ds = CropDataset(cfg.data, val_rows, spec, index, None, cfg.seed)
    sampler = EpochSampler(train_ds.labels, cfg.seed, cfg.balance_power, cfg.stream)
    train_loader = make_loader(train_ds, cfg.batch_size, cfg.workers, sampler, device,
                               drop_last=True)
    val_loader = make_loader(val_ds, cfg.eval_batch_size, cfg.workers, None, device)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * cfg.epochs

    net = PlanktonNet(spec)
    init_weights(net, spec, cfg.seed)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    opt = make_optimizer(net, cfg)
    state = TrainState()
    if ck is not None:
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["optimizer"])
        state = TrainState(**ck["state"])
    elif cfg.init:
        try:
            warm_start(net, cfg, spec_text)
        except (OSError, ValueError, safetensors_io.SafetensorsError) as e:
            print("train: init: %s" % e, file=sys.stderr)
            return 1
        log("starting from the weights of %s" % cfg.init)
    if ck is None:
        try:   # resolved once: a resumed run keeps the precision its checkpoint names
            cfg.precision = resolve_precision(cfg, net, device, log)
        except ValueError as e:
            print("train: %s" % e, file=sys.stderr)
            return 1
        with open(os.path.join(args.out, "config.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
    log("%s on %s in %s (%d threads, %d workers): %d params, %.1f MFLOP/image; %d train / %d val "
        "crops, %d steps/epoch x %d epochs%s" % (
            spec.name, device, cfg.precision, cfg.threads, cfg.workers, spec.param_count(),
            spec.flops_per_image() / 1e6, len(train_ds), len(val_ds), steps_per_epoch,
            cfg.epochs, ", time budget %.0f min" % cfg.time_budget_min
            if cfg.time_budget_min else ""))

    session_epochs = 0
    while not state.done and state.epoch < cfg.epochs:
        if args.stop_after is not None and session_epochs >= args.stop_after:
            log("stopping after %d epochs (--stop-after); continue with --resume" % session_epochs)
            return 0
        session_epochs += 1
        tr = train_epoch(net, opt, train_loader, sampler, state, cfg, total_steps, device, log)
        t0 = time.time()
        probs, labels = predict(net, val_loader, device, cfg.channels_last)
        m = summary(probs, labels)
        state.elapsed_s += time.time() - t0
        state.epoch += 1
        if state.epoch >= cfg.epochs:
            state.done = True
        epoch_s = tr["seconds"] + time.time() - t0
        per_epoch = state.elapsed_s / state.epoch
        eta = 0.0 if state.done else per_epoch * (cfg.epochs - state.epoch)
        if cfg.time_budget_min and not state.done:
            eta = min(eta, max(cfg.time_budget_min * 60 - state.elapsed_s, 0.0) + 10.0)
        state.history.append({"epoch": state.epoch, "step": state.step, "train_loss": tr["loss"],
                              "val_loss": m["log_loss"], "val_accuracy": m["accuracy"],
                              "val_top5": m["top5"], "lr": tr["lr"], "seconds": epoch_s,
                              "images_per_s": tr["images"] / max(tr["seconds"], 1e-9)})
        log("epoch %2d/%d  train loss %.4f  val loss %.4f  val acc %.2f%%  top5 %.2f%%  lr %.2e  "
            "%.0f img/s  epoch %s  elapsed %s  ETA %s" % (
                state.epoch, cfg.epochs, tr["loss"], m["log_loss"], 100 * m["accuracy"],
                100 * m["top5"], tr["lr"], state.history[-1]["images_per_s"], fmt_min(epoch_s),
                fmt_min(state.elapsed_s), fmt_min(eta)))
        save_checkpoint(last_path, net, opt, state, cfg, spec_text)
        if cfg.keep_checkpoints > 0:
            ep_path = os.path.join(args.out, "epoch_%03d.pt" % state.epoch)
            save_checkpoint(ep_path, net, opt, state, cfg, spec_text)
            old = os.path.join(args.out, "epoch_%03d.pt" % (state.epoch - cfg.keep_checkpoints))
            if os.path.exists(old):
                os.remove(old)
    log("done: %d epochs, %d steps, %s" % (state.epoch, state.step, fmt_min(state.elapsed_s)))
    if args.export:
        export_trained(args.export, net, spec, spec_text, cfg, state)
        log("exported %s (%s weights)" % (args.export, cfg.export_dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
