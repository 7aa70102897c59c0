"""Where a sequential model's item vectors come from: learnable IDs, or features through RAT."""
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

    def forward(self) -> torch.Tensor:
        return self.table.weight


def make_item_encoder(dataset, features, hidden: int, params: dict) -> nn.Module:
    """ID embeddings without features; the RAT adapter over the frozen feature table with them."""
    if features is None:
        return IDEmbedding(dataset.n_items, hidden)
    from recommenders.rat import RATAdapter

    return RATAdapter(features.sequential_table(), hidden)
