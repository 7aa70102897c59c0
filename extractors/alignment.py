"""How aligned a feature set's two modalities are (the paper names this as missing).

Measured in the space both modalities share: the raw hidden states for qwenvl/SDA (before the
per-modality PCA, which gives each modality its own axes), the set itself when it has no PCA
and equal widths (CLIP). Base features have no shared space (CNN vs MiniLM): NaN, never a guess.

- matched cosine: mean cos(image_i, text_i); random cosine: mean cos(image_i, text_π(i)) for a
  fixed random permutation π without fixed points;
- modality gap: distance between the centroids of the L2-normalised image and text vectors;
- image->text recall@K: share of items whose own text ranks in the top K of all items' texts
  by cosine (ties count against the item, as in the evaluator).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

RECALL_KS = (1, 10)
SEED = 0


def shared_space(features) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(image, text, where from) in a space both modalities share, or None when there is none."""
    meta = features.meta
    raw_dir = meta.get("raw_dir")
    if meta.get("pca") and raw_dir and Path(raw_dir).is_dir():
        from extractors.shards import merge_shards

        n, shard = int(meta["items"]), int(meta["settings"]["shard_items"])
        image, _ = merge_shards(Path(raw_dir), "image", n, shard)
        text, _ = merge_shards(Path(raw_dir), "text", n, shard)
        return image, text, "raw hidden states (before PCA)"
    if not meta.get("pca") and features.image.shape[1] == features.text.shape[1]:
        return features.image, features.text, "feature set"
    return None


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def derangement(n: int, seed: int = SEED) -> np.ndarray:
    """A fixed random permutation with no item mapped to itself (n >= 2)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.roll(order, 1)[np.argsort(order)]


def alignment(image: np.ndarray, text: np.ndarray, chunk: int = 2048) -> dict:
    """The metrics of the module docstring for row-aligned `image` and `text` matrices."""
    x, y = _unit(image), _unit(text)
    n = len(x)
    matched = np.einsum("ij,ij->i", x, y)
    random = np.einsum("ij,ij->i", x, y[derangement(n)])
    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):  # never the whole n x n similarity matrix at once
        sims = x[start:start + chunk] @ y.T
        own = matched[start:start + chunk, None]
        ranks[start:start + chunk] = (sims >= own).sum(axis=1) - 1  # others at least as close
    row = {"items": n, "matched_cosine": float(matched.mean()), "random_cosine": float(random.mean()),
           "modality_gap": float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))}
    row |= {f"recall@{k}": float((ranks < k).mean()) for k in RECALL_KS}
    return row


def diagnose(features) -> dict:
    """One row for `features`: the alignment metrics, or NaN with the reason when no shared space."""
    space = shared_space(features)
    if space is None:
        nan = float("nan")
        return {"items": int(features.image.shape[0]), "matched_cosine": nan, "random_cosine": nan,
                "modality_gap": nan, **{f"recall@{k}": nan for k in RECALL_KS},
                "space": "none: image and text come from different models"}
    image, text, where = space
    return alignment(image, text) | {"space": where}
