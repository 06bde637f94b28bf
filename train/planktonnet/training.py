"""The training loop's parts: configuration, initialisation, loaders,
one epoch of optimisation, prediction, and checkpoints.

train/train.py is the command line around these; train/evaluate.py uses
make_loader() and predict(). Nothing here keeps state between calls: the
caller owns the net, the optimizer and the TrainState.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from .augment import AugmentConfig
from .data import CropDataset, EpochSampler
from .net import PlanktonNet
from .schedule import lr_at, progress
from .export import write_model
from .spec import ModelSpec, parse_spec


def read_config_file(path: str, _seen: Tuple[str, ...] = ()) -> dict:
    """A config YAML as a dict. `base: FILE` (relative to this file) names a config whose keys
    this one starts from and overrides, key by key (a nested `augment:` replaces the base's)."""
    real = os.path.realpath(path)
    if real in _seen:
        raise ValueError("config: %s: its base chain comes back to itself" % path)
    with open(path, encoding="utf-8") as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ValueError("config: %s: not a mapping of settings" % path)
    base = d.pop("base", None)
    if base is None:
        return d
    merged = read_config_file(os.path.join(os.path.dirname(path), str(base)), _seen + (real,))
    merged.update(d)
    return merged


@dataclass
class TrainConfig:
    """Everything that decides a run besides the model.yaml (see train/configs/*.yaml)."""
    model: str = "train/specs/ndsb_seed_c4.yaml"
    data: str = "../shared/data/ndsb/train"
    split: str = "train/splits/ndsb_seed{seed}.tsv"
    seed: int = 1
    val_fraction: float = 0.1
    max_train: Optional[int] = None           # use N training crops spread over the split
    max_val: Optional[int] = None             # (smoke tests; None = all)
    init: Optional[str] = None                # start from this checkpoint's weights (warm restart:
                                              # fresh optimizer and schedule, same split and model)
    # The random stream of the crops' augmentation, the sample order and dropout, beside seed.
    # None: 0 for a cold start, and for a warm start a number taken from the init weights'
    # sha256, so each cycle of a lineage draws augmentations the earlier cycles never saw (with
    # 0 every cycle repeated its predecessors' epochs crop for crop: the weights had learnt
    # those very crops, so the training loss started low and rose epoch after epoch while the
    # validation loss fell). Resolved once and kept in the run's config.yaml and checkpoints.
    stream: Optional[int] = None
    epochs: int = 30
    time_budget_min: Optional[float] = None   # anneal and stop by this much training time
    batch_size: int = 64
    optimizer: str = "adamw"                  # adamw | sgd (Nesterov)
    lr: float = 2e-3
    momentum: float = 0.9                     # sgd only
    weight_decay: float = 1e-4                # decoupled (AdamW) / L2 (SGD); not on biases
    warmup: float = 0.03                      # fraction of the run
    final_lr_fraction: float = 0.01
    label_smoothing: float = 0.0
    balance_power: float = 0.0                # 0 natural mix, 1 class-balanced sampling
    grad_clip: float = 5.0                    # max global grad norm (0 = off)
    workers: int = 1
    threads: int = 2
    eval_batch_size: int = 128
    channels_last: bool = True                # NHWC maps: faster convolutions on CPU (oneDNN)
    precision: str = "fp32"                   # fp32 | bf16 (autocast; fp32 master weights, loss
                                              # and softmax) | auto (bf16 where it is faster)
    log_every: int = 0                        # a progress line every N steps (0 = per epoch only)
    keep_checkpoints: int = 2                 # epoch_NNN.pt files kept besides last.pt
    export_dtype: str = "f16"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError("config: unknown key(s) %s (known: %s)" % (
                ", ".join(unknown), ", ".join(sorted(names))))
        d = dict(d)
        if d.get("precision", "fp32") not in PRECISIONS:
            raise ValueError("config: precision %r: choose one of %s" % (
                d["precision"], ", ".join(PRECISIONS)))
        if "augment" in d:
            d["augment"] = AugmentConfig.from_dict(d["augment"] or {})
        return cls(**d)

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def split_path(self) -> str:
        return self.split.format(seed=self.seed)


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint."""
    epoch: int = 0            # epochs completed
    step: int = 0             # optimizer steps done
    elapsed_s: float = 0.0    # training + validation wall time, summed over resumes
    done: bool = False
    history: List[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------
# initialisation


def init_weights(net: PlanktonNet, spec: ModelSpec, seed: int) -> None:
    """He-normal weights (fan_in counts rolled channels; gain for the leaky slope), zero biases;
    the logits layer starts small so the first predictions are near uniform."""
    gen = torch.Generator().manual_seed(seed)
    mods = [m for ml in net.branch_layers for m in ml] + list(net.head_layers)
    weighted = [(l, m) for l, m in zip(spec.all_layers(), mods) if l.has_weights]
    for k, (l, m) in enumerate(weighted):
        fan_in = m.weight[0].numel()
        gain = math.sqrt(2.0 / (1.0 + l.slope ** 2)) if l.activation == "leaky_relu" else 1.0
        if k == len(weighted) - 1:
            gain = 0.1
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (gain / math.sqrt(fan_in)))
            m.bias.zero_()


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in net.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in net.named_parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError("optimizer must be adamw or sgd, got %r" % cfg.optimizer)


# ---------------------------------------------------------------------------
# loaders


def _worker_init(_):
    torch.set_num_threads(1)


def make_loader(ds: CropDataset, batch_size: int, workers: int, sampler=None,
                device: Optional[torch.device] = None, drop_last: bool = False):
    """A DataLoader decoding and warping in `workers` processes (0 = in this process)."""
    kw = {}
    if workers > 0:
        kw = dict(num_workers=workers, worker_init_fn=_worker_init, persistent_workers=True,
                  prefetch_factor=4)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last,
        pin_memory=bool(device is not None and device.type == "cuda"), **kw)


def _to(batch, device, channels_last: bool = False):
    """Branch inputs and labels on the device; image inputs NHWC when channels_last."""
    *inputs, labels = batch
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return ([x.to(device, non_blocking=True).contiguous(memory_format=fmt) if x.dim() == 4
             else x.to(device, non_blocking=True) for x in inputs],
            labels.to(device, non_blocking=True))


# ---------------------------------------------------------------------------
# prediction


PRECISIONS = ("fp32", "bf16", "auto")


def autocast(precision: str, device: torch.device):
    """The forward pass's autocast context: bf16 on the device's type, or none (fp32)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError("precision %r: a run trains in fp32 or bf16 (auto is resolved before "
                         "training by resolve_precision)" % precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> List[str]:
    """The bf16 instruction sets this CPU reports (avx512_bf16, amx_bf16), [] if none."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx512_bf16", "amx_bf16") if x in flags]
    except OSError:
        pass
    return []


def _step_seconds(net: PlanktonNet, inputs, y, precision: str, device: torch.device,
                  steps: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    times = []
    for _ in range(steps + 1):
        t = time.time()
        with autocast(precision, device):
            logits = net(inputs, logits=True)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.time() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def resolve_precision(cfg: "TrainConfig", net: PlanktonNet, device: torch.device,
                      log: Callable[[str], None], steps: int = 3) -> str:
    """cfg.precision with auto resolved: fp32 where the CPU has no bf16 instructions, else the
    faster of fp32 and bf16 in a few timed training steps of a copy of net on random inputs of
    one batch (the run's weights are not touched). Logs what was found and chosen."""
    if cfg.precision not in PRECISIONS:
        raise ValueError("precision %r: choose one of %s" % (cfg.precision, ", ".join(PRECISIONS)))
    if cfg.precision != "auto":
        return cfg.precision
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        if not flags:
            log("precision auto: this CPU has no bf16 instructions (avx512_bf16, amx_bf16): fp32")
            return "fp32"
    else:
        flags = [device.type]
    probe = copy.deepcopy(net)
    probe.train()
    n = cfg.batch_size
    inputs = []
    for bs in net.spec.branches:
        if bs.input.kind == "image":
            x = torch.rand(n, 1, bs.input.size, bs.input.size, device=device)
            inputs.append(x.contiguous(memory_format=torch.channels_last)
                          if cfg.channels_last else x)
        else:
            inputs.append(torch.randn(n, len(bs.input.features), device=device))
    y = torch.randint(0, net.spec.n_classes, (n,), device=device)
    t = {p: _step_seconds(probe, inputs, y, p, device, steps) for p in ("fp32", "bf16")}
    choice = "bf16" if t["bf16"] < t["fp32"] else "fp32"
    log("precision auto (%s): a training step of batch %d takes %.3f s in fp32, %.3f s in bf16 "
        "(%.2fx): %s" % (" ".join(flags), n, t["fp32"], t["bf16"], t["fp32"] / t["bf16"], choice))
    return choice


@torch.no_grad()
def predict(net: PlanktonNet, loader, device: torch.device,
            channels_last: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """(probabilities [n, classes] float64, labels [n]) over a loader, in eval mode."""
    was_training = net.training
    net.eval()
    probs, labels = [], []
    for batch in loader:
        inputs, y = _to(batch, device, channels_last)
        logits = net(inputs, logits=True).float()
        t = net.spec.temperature   # calibration, as the engine applies it (FORMAT.md)
        probs.append(torch.softmax(logits.double() / t, dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    net.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)


# ---------------------------------------------------------------------------
# one epoch


def train_epoch(net: PlanktonNet, opt: torch.optim.Optimizer, loader, sampler: EpochSampler,
                state: TrainState, cfg: TrainConfig, total_steps: int, device: torch.device,
                log: Callable[[str], None]) -> Dict[str, float]:
    """One pass over the sampler's epoch (state.epoch); stops early when progress reaches 1.

    Updates state.step and state.elapsed_s; returns {'loss', 'images', 'seconds', 'lr'}.
    """
    net.train()
    sampler.set_epoch(state.epoch)
    t0 = time.time()
    base_elapsed = state.elapsed_s
    budget = cfg.time_budget_min * 60.0 if cfg.time_budget_min else None
    loss_sum, n_seen, lr = 0.0, 0, cfg.lr
    batches = iter(loader)
    # The dropout stream depends only on (seed, stream, epoch), so a resumed run repeats an
    # uninterrupted one (seeded after iter(): a fresh loader iterator draws a seed).
    torch.manual_seed(cfg.seed * 1_000_003 + state.epoch + ((cfg.stream or 0) << 20))
    for k, batch in enumerate(batches):
        p = progress(state.step, total_steps, base_elapsed + time.time() - t0, budget)
        if p >= 1.0:
            state.done = True
            break
        lr = lr_at(p, cfg.lr, cfg.warmup, cfg.final_lr_fraction)
        for g in opt.param_groups:
            g["lr"] = lr
        inputs, y = _to(batch, device, cfg.channels_last)
        with autocast(cfg.precision, device):
            logits = net(inputs, logits=True)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError("loss is %s at step %d (lr %.3g)" % (float(loss), state.step,
                                                                           lr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        state.step += 1
        loss_sum += float(loss) * len(y)
        n_seen += len(y)
        if cfg.log_every and state.step % cfg.log_every == 0:
            dt = time.time() - t0
            log("  step %d  epoch %d batch %d/%d  loss %.4f  lr %.3g  %.1f img/s" % (
                state.step, state.epoch + 1, k + 1, len(loader), loss_sum / n_seen, lr,
                n_seen / max(dt, 1e-9)))
    dt = time.time() - t0
    state.elapsed_s = base_elapsed + dt
    if progress(state.step, total_steps, state.elapsed_s, budget) >= 1.0:
        state.done = True
    return {"loss": loss_sum / max(n_seen, 1), "images": n_seen, "seconds": dt, "lr": lr}


# ---------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: str, net: PlanktonNet, opt: torch.optim.Optimizer, state: TrainState,
                    cfg: TrainConfig, spec_text: str) -> None:
    """Atomic write of everything a resume needs (weights under FORMAT.md names)."""
    tmp = path + ".tmp"
    torch.save({"net": net.state_dict(), "optimizer": opt.state_dict(), "state": asdict(state),
                "config": cfg.to_dict(), "spec_text": spec_text}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    ck = torch.load(path, map_location=map_location)
    for k in ("net", "optimizer", "state", "config", "spec_text"):
        if k not in ck:
            raise ValueError("%s: not a training checkpoint (no '%s')" % (path, k))
    return ck


# ---------------------------------------------------------------------------
# export


def export_trained(out_dir: str, net: PlanktonNet, spec: ModelSpec, spec_text: str,
                   cfg: TrainConfig, state: TrainState) -> None:
    """The model folder: spec_text as model.yaml, weights in cfg.export_dtype, and the run's
    epochs, steps, time, last validation figures and config in the safetensors metadata."""
    last = state.history[-1] if state.history else {}
    meta = {"weights": "trained (train/train.py)", "epochs": str(state.epoch),
            "steps": str(state.step), "train_minutes": "%.1f" % (state.elapsed_s / 60),
            "val_accuracy": "%.4f" % last.get("val_accuracy", float("nan")),
            "val_log_loss": "%.4f" % last.get("val_loss", float("nan")),
            "config": json.dumps(cfg.to_dict(), sort_keys=True)}
    net = net.cpu().float().to(memory_format=torch.contiguous_format)
    write_model(out_dir, spec, net, dtype=cfg.export_dtype, metadata=meta, yaml_text=spec_text)


def export_checkpoint(path: str, out_dir: str, dtype: Optional[str] = None) -> TrainState:
    """export_trained() from a checkpoint file; returns the checkpoint's TrainState."""
    ck = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ck["config"])
    if dtype:
        cfg.export_dtype = dtype
    spec = parse_spec(ck["spec_text"], path)
    net = PlanktonNet(spec)
    net.load_state_dict(ck["net"])
    state = TrainState(**ck["state"])
    export_trained(out_dir, net, spec, ck["spec_text"], cfg, state)
    return state
