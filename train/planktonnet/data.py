"""Training data: the class-folder tree, the train/validation split file, and
the streaming Dataset that decodes and warps crops in worker processes.

    items = scan_tree(root)                       # [(relpath, label)], sorted
    split = load_or_make_split(path, items, seed, val_fraction)
    ds = CropDataset(root, split.train, spec, class_index, augmenter, seed)

Split file (train/splits/ndsb_seed<SEED>.tsv; the C evaluation tool reads the
same format): a header line `path<TAB>label<TAB>split`, then one row per crop
with the path relative to the data root (`acantharia_protist/100224.jpg`), its
class label and `train` or `val`. The split is stratified per class with a
fixed seed; an existing file is reused as it is, so every later measurement
sees the same validation crops.

Crops are read from disk on every access (nothing is cached in memory). Gray
conversion matches the C decoder (kernels/cpu/pd_image.c): JPEG decodes
straight to its luma channel, other formats go through PIL's rounded luma.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .spec import ModelSpec
from .warp import Augment, preprocess

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SPLIT_HEADER = ("path", "label", "split")


def scan_tree(root: str) -> List[Tuple[str, str]]:
    """[(path relative to root, class label)] for `<root>/<class>/*.{png,jpg,jpeg,tif}`, sorted."""
    if not os.path.isdir(root):
        raise FileNotFoundError("data root %s is not a directory" % root)
    items = []
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(d, f)):
                items.append((label + "/" + f, label))
    if not items:
        raise ValueError("no images under %s (expected <root>/<class>/*.jpg|png|tif)" % root)
    return items


@dataclass
class Split:
    """Rows of a split file: (path, label) pairs for each side."""
    train: List[Tuple[str, str]]
    val: List[Tuple[str, str]]
    path: str = ""


def make_split(items: Sequence[Tuple[str, str]], seed: int, val_fraction: float = 0.1) -> Split:
    """Stratified split: per class, round(n * val_fraction) crops go to val (at least 1 when
    the class has 2 or more, never all of them); reproducible from the seed."""
    by_class: Dict[str, List[str]] = {}
    for p, lab in items:
        by_class.setdefault(lab, []).append(p)
    rng = random.Random(seed)
    train, val = [], []
    for lab in sorted(by_class):
        paths = sorted(by_class[lab])
        rng.shuffle(paths)
        n_val = int(math.floor(len(paths) * val_fraction + 0.5))
        if len(paths) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, len(paths) - 1)
        val += [(p, lab) for p in paths[:n_val]]
        train += [(p, lab) for p in paths[n_val:]]
    return Split(sorted(train), sorted(val))


def write_split(path: str, split: Split) -> None:
    """Writes the TSV (header path/label/split, train rows then val rows, each sorted by path)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(SPLIT_HEADER) + "\n")
        for side, rows in (("train", split.train), ("val", split.val)):
            for p, lab in rows:
                f.write("%s\t%s\t%s\n" % (p, lab, side))
    os.replace(tmp, path)


def read_split(path: str) -> Split:
    """Reads a split TSV; raises ValueError naming the line on any malformed row."""
    train, val = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if tuple(header) != SPLIT_HEADER:
            raise ValueError("%s:1: expected header %s, got %s" % (path, "\\t".join(SPLIT_HEADER),
                                                                   "\\t".join(header)))
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != 3 or cols[2] not in ("train", "val"):
                raise ValueError("%s:%d: expected path<TAB>label<TAB>train|val, got %r"
                                 % (path, n, line))
            (train if cols[2] == "train" else val).append((cols[0], cols[1]))
    return Split(train, val, path)


def load_or_make_split(path: str, root: str, seed: int, val_fraction: float = 0.1,
                       log: Callable[[str], None] = print) -> Split:
    """The split at `path` if it exists (checked against the tree), else a new one written there."""
    if os.path.exists(path):
        split = read_split(path)
        rows = split.train + split.val
        missing = [p for p, _ in rows if not os.path.exists(os.path.join(root, p))]
        if missing:
            raise ValueError("%s: %d listed crops are not under %s (first: %s)"
                             % (path, len(missing), root, missing[0]))
        log("split: reusing %s (%d train, %d val)" % (path, len(split.train), len(split.val)))
        return split
    split = make_split(scan_tree(root), seed, val_fraction)
    write_split(path, split)
    split.path = path
    log("split: wrote %s (%d train, %d val, seed %d)" % (path, len(split.train), len(split.val),
                                                         seed))
    return split


def spread(rows: Sequence, n: Optional[int]) -> list:
    """n rows spread evenly over `rows` (row i * len // n for i < n), all of them when n is
    None, 0 or >= len; the same selection as `planktond-model eval --limit N`."""
    rows = list(rows)
    if not n or n >= len(rows):
        return rows
    return [rows[i * len(rows) // n] for i in range(n)]


def read_gray(path: str) -> np.ndarray:
    """uint8 [h, w] gray pixels, decoded as the C engine decodes them."""
    from PIL import Image

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("L", im.size)   # libjpeg's own gray output (Y), no colour round trip
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, rgba)
        return np.array(im.convert("L"))


def class_index(spec: ModelSpec, labels: Sequence[str]) -> Dict[str, int]:
    """label -> output index from the spec's class list; every data label must be a model class."""
    index = {c: i for i, c in enumerate(spec.classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError("%d data classes are not in the model's class list (first: %s); the "
                         "model.yaml 'classes' must name every class folder" % (len(unknown),
                                                                               unknown[0]))
    return index


class CropDataset:
    """Map-style dataset: item k -> (branch inputs..., class index), decoded from disk.

    `augment(rng) -> Augment` draws one random transform per crop (shared by
    every branch); None means the identity (validation, serving). The random
    stream of item k in epoch e depends only on (seed, stream, e, k), so results do
    not depend on the number of workers. The epoch travels in the index (item
    `e * len(ds) + k` is crop k in epoch e; see EpochSampler), so persistent
    worker processes need no shared state.
    """

    def __init__(self, root: str, rows: Sequence[Tuple[str, str]], spec: ModelSpec,
                 index: Dict[str, int], augment: Optional[Callable[[np.random.Generator], Augment]]
                 = None, seed: int = 0, stream: int = 0):
        self.root, self.rows, self.spec = root, list(rows), spec
        self.stream = stream
        self.labels = np.array([index[lab] for _, lab in self.rows], dtype=np.int64)
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        epoch, k = divmod(int(i), len(self.rows))
        path = os.path.join(self.root, self.rows[k][0])
        gray = read_gray(path)
        aug = None
        if self.augment is not None:
            key = [self.seed, epoch, k] if not self.stream else [self.seed, self.stream, epoch, k]
            rng = np.random.default_rng(key)
            aug = self.augment(rng)
        slots = preprocess(self.spec, gray, aug)
        out = [s[None] if b.input.kind == "image" else s for s, b in zip(slots, self.spec.branches)]
        return tuple(out) + (self.labels[k],)


class EpochSampler:
    """Indices of one epoch for CropDataset: `epoch * n + k` for a shuffled (or
    class-balanced) order of k, reproducible from (seed, epoch, stream).

    balanced: draw n crops with probability proportional to 1 / (class count)
    ** power (power 1 = every class equally often, 0 = the natural mix).
    """

    def __init__(self, labels: np.ndarray, seed: int, balance_power: float = 0.0,
                 stream: int = 0):
        self.labels, self.seed, self.power = np.asarray(labels), seed, balance_power
        self.stream = stream
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        n = len(self.labels)
        key = [self.seed, 1_000_003, self.epoch] + ([self.stream] if self.stream else [])
        rng = np.random.default_rng(key)
        if self.power > 0:
            counts = np.bincount(self.labels)
            w = 1.0 / counts[self.labels].astype(np.float64) ** self.power
            order = rng.choice(n, size=n, replace=True, p=w / w.sum())
        else:
            order = rng.permutation(n)
        return iter((self.epoch * n + order).tolist())
