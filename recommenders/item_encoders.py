"""Where a sequential model's item vectors come from: learnable IDs, or features through RAT.

An item encoder is called as `encoder(ids)` for the vectors of any tensor of item indices
(padding index n_items included), or `encoder()` for the whole table (n_items + 1 rows).
"""
from __future__ import annotations

import torch
from torch import nn


def small_embedding(rows: int, hidden: int, padding_idx: int | None = None) -> nn.Embedding:
    """An embedding table started at N(0, 0.02), RecBole's start for every embedding. nn.Embedding's
    own N(0, 1) would dwarf the sqrt(d)-scaled item vectors it is added to (measured in
    docs/recommenders.md); LLMEmb's xavier-normal start is as small (std 0.01-0.07)."""
    table = nn.Embedding(rows, hidden, padding_idx=padding_idx)
    nn.init.normal_(table.weight, std=0.02)
    if padding_idx is not None:
        with torch.no_grad():
            table.weight[padding_idx].zero_()
    return table


class IDEmbedding(nn.Module):
    """A learnable table with a zero padding row at index n_items."""

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.table = small_embedding(n_items + 1, hidden, padding_idx=n_items)

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.table.weight if ids is None else self.table(ids)


def make_item_encoder(dataset, features, hidden: int) -> nn.Module:
    """ID embeddings without features; the RAT adapter over the frozen feature table with them."""
    if features is None:
        return IDEmbedding(dataset.n_items, hidden)
    from recommenders.rat import RATAdapter

    return RATAdapter(features.sequential_table(), hidden)
