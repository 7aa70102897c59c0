"""Where a sequential model's item vectors come from: learnable IDs, or features through RAT.

An item encoder is called as `encoder(ids)` for the vectors of any tensor of item indices
(padding index n_items included), or `encoder()` for the whole table (n_items + 1 rows).
"""
from __future__ import annotations

import torch
from torch import nn


class IDEmbedding(nn.Module):
    """A learnable table with a zero padding row at index n_items."""

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.table = nn.Embedding(n_items + 1, hidden, padding_idx=n_items)
        nn.init.normal_(self.table.weight, std=0.02)  # small init keeps the sqrt(d) scaling sane
        with torch.no_grad():
            self.table.weight[n_items].zero_()

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.table.weight if ids is None else self.table(ids)


def make_item_encoder(dataset, features, hidden: int) -> nn.Module:
    """ID embeddings without features; the RAT adapter over the frozen feature table with them."""
    if features is None:
        return IDEmbedding(dataset.n_items, hidden)
    from recommenders.rat import RATAdapter

    return RATAdapter(features.sequential_table(), hidden)
