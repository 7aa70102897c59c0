"""Training FLOPs of one recommender epoch (6 FLOPs a dense parameter and token: forward and
backward), coarse upper bounds: sequences count at their padded length, and a grid point at its
trainer's max_epochs (early stopping usually ends sooner). ID embeddings are lookups (no FLOPs).

- SASRec / BERT4Rec: n_blocks x (4·h² attention + 2·h² feed-forward) a position, users x max_len
  positions an epoch; with features RAT's merged map (d_feat x h) a position too. A RAT teacher
  is an ID-SASRec trained teacher_epochs epochs.
- VBPR: the feature projection (d_feat x d) on the positive and the negative item of every
  training interaction.
- SLMRec: LightGCN-style propagation of three views over the whole graph in every batch
  (n_layers x 2 x 2·nnz·d a view) plus the feature projections of every item (d_feat x d).
"""
from __future__ import annotations

from harness.costs.data import DataStats

MINILM_DIM, CNN_DIM = 384, 4096


def feature_dim(extractor: str, settings: dict) -> int:
    """Width of [image ‖ text] a recommender reads."""
    if extractor == "base":
        return CNN_DIM + MINILM_DIM
    if extractor == "clip":
        return 2 * 768
    return 2 * int(settings.get("pca_dim") or 3584)


def epoch_flops(model: str, params: dict, stats: DataStats, d_feat: int | None) -> float | None:
    """None where the cost model has no formula (pop trains nothing: 0)."""
    if model == "pop":
        return 0.0
    if model in ("sasrec", "bert4rec"):
        h = params["hidden"]
        dense = params["n_blocks"] * 6 * h * h + (d_feat * h if d_feat else 0)
        return 6.0 * dense * stats.users * params["max_len"]
    if model == "vbpr":
        return 6.0 * (d_feat or 0) * params["embedding_size"] * 2 * stats.train_interactions
    if model == "slmrec":
        d, batches = params["embedding_size"], -(-stats.train_interactions // params["batch_size"])
        propagate = 3 * params["n_layers"] * 2 * 2 * stats.train_interactions * d
        project = 2.0 * stats.items * (d_feat or 0) * d
        return 3.0 * batches * (propagate + project)
    return None
