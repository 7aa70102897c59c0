"""Masked mean pooling of hidden states and the per-modality PCA to the recommenders' width."""
from __future__ import annotations

import numpy as np

from protocol.errors import HarnessError


def masked_mean(hidden, mask):
    """Mean of `hidden` (batch, seq, dim) over positions where `mask` (batch, seq) is 1.

    Pad positions contribute nothing, so left-padding an item in a batch leaves its vector
    unchanged. Accumulates in float32 whatever the model's dtype (bf16 sums lose digits).
    """
    weights = mask.to(hidden.device).float().unsqueeze(-1)
    total = (hidden.float() * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


def check_pca_dim(dim: int, n_items: int, raw_dim: int) -> None:
    """Refuse a PCA width the data cannot give (called before extraction too, to fail early)."""
    if dim > min(n_items, raw_dim):
        raise HarnessError(f"PCA to {dim} dimensions needs at least {dim} items and {dim} raw "
                           f"dimensions, but there are {n_items} items of {raw_dim} dimensions; set "
                           f"pca_dim to at most {min(n_items, raw_dim)} (or pca_dim=0 to keep the raw features).")


def pca_reduce(matrix: np.ndarray, dim: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """`matrix` (items, d) reduced to `dim` columns by PCA fitted on these items.

    Full SVD (no randomised solver), so the result depends only on the input and is
    reproducible; the component signs are fixed by scikit-learn's sign convention.
    Returns the reduced float32 matrix and a summary for the feature set's meta.json.
    """
    from sklearn.decomposition import PCA

    n, d = matrix.shape
    check_pca_dim(dim, n, d)
    pca = PCA(n_components=dim, svd_solver="full", random_state=seed)
    reduced = pca.fit_transform(np.asarray(matrix, dtype=np.float64)).astype(np.float32)
    summary = {"raw_dim": d, "dim": dim,
               "explained_variance": float(pca.explained_variance_ratio_.sum())}
    return reduced, summary
