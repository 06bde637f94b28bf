"""Classification metrics on probabilities, as the NDSB competition scored them.

log loss: probabilities clipped to [1e-15, 1 - 1e-15], each row renormalised
to sum 1, then the mean of -ln p[true class]. Accuracy and top-5 accuracy
count ties in favour of the lower class index (argmax / stable sort).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

CLIP = 1e-15


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), CLIP, 1.0 - CLIP)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    order = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return float(np.mean((order == np.asarray(labels)[:, None]).any(axis=1)))


def summary(probs: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """{'n', 'accuracy', 'top5', 'log_loss'} for probabilities [n, classes] and labels [n]."""
    labels = np.asarray(labels, dtype=np.int64)
    return {"n": int(len(labels)), "accuracy": accuracy(probs, labels),
            "top5": top_k_accuracy(probs, labels, 5), "log_loss": log_loss(probs, labels)}
