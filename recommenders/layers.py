"""Transformer blocks shared by SASRec and BERT4Rec (pre-LayerNorm, as in the LLMEmb SASRec)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(pad: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) bool, True where a query may attend to a key.

    Padding keys are hidden; a position always sees itself, so padding queries stay finite
    (their outputs are zeroed afterwards and never reach a real position).
    """
    length = pad.shape[1]
    allowed = ~pad[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=pad.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=pad.device)


def length_groups(lengths: torch.Tensor, ratio: float = 2.0) -> list[tuple[torch.Tensor, int]]:
    """Rows grouped by length: (row indices, longest length) with every row in a group longer
    than longest / `ratio`, so trimming a group to its longest row at most doubles its work."""
    lengths = lengths.clamp(min=1)  # an all-padding row still needs one column
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    groups, start = [], 0
    while start < len(order):
        width, end = sorted_lengths[start], start
        while end < len(order) and sorted_lengths[end] * ratio > width:
            end += 1
        groups.append((order[start:end], width))
        start = end
    return groups


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, hidden = query.shape
        w_q, w_kv = self.qkv.weight.split([hidden, 2 * hidden])
        b_q, b_kv = self.qkv.bias.split([hidden, 2 * hidden])
        q = F.linear(query, w_q, b_q)
        k, v = F.linear(keys, w_kv, b_kv).chunk(2, dim=-1)
        heads = lambda t: t.view(b, length, self.n_heads, -1).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(1, 2).reshape(b, length, hidden))


class Block(nn.Module):
    """LN(x) attends over x (residual from the normalised query), then a position-wise FFN."""

    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.attn = SelfAttention(hidden, n_heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.Dropout(dropout))

    def forward(self, x, mask, keep):
        q = self.attn_norm(x)
        x = q + self.attn(q, x, mask)
        x = self.ffn_norm(x)
        return (x + self.ffn(x)) * keep


class TransformerEncoder(nn.Module):
    def __init__(self, hidden: int, n_blocks: int, n_heads: int, dropout: float, causal: bool):
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(Block(hidden, n_heads, dropout) for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(hidden, eps=1e-8)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        mask = attention_mask(pad, self.causal)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        x = x * keep
        for block in self.blocks:
            x = block(x, mask, keep)
        return self.final_norm(x)
