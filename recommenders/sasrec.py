"""SASRec (LLMEmb settings): causal self-attention over the history, BCE with one negative."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recommenders.base import Recommender
from recommenders.item_encoders import make_item_encoder
from recommenders.layers import TransformerEncoder


class SASRec(Recommender):
    name = "sasrec"
    input_type = "sequence"
    defaults = {"hidden": 128, "n_blocks": 2, "n_heads": 1, "dropout": 0.5, "max_len": 200,
                "causal": True, "batch_size": 512}

    @classmethod
    def wants_features(cls, extractor: str) -> bool:
        return extractor != "base"  # with Base features the paper's sequential rows use IDs

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        p = self.params
        self.item_encoder = make_item_encoder(dataset, features, p["hidden"], p)
        self.position = nn.Embedding(p["max_len"], p["hidden"])
        self.emb_dropout = nn.Dropout(p["dropout"])
        self.encoder = TransformerEncoder(p["hidden"], p["n_blocks"], p["n_heads"], p["dropout"],
                                          causal=p["causal"])

    def encode(self, items: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded items -> (B, L, H); position max_len-1 is always the last item."""
        length = items.shape[1]
        positions = torch.arange(self.params["max_len"] - length, self.params["max_len"], device=items.device)
        x = table[items] * math.sqrt(table.shape[1]) + self.position(positions)
        return self.encoder(self.emb_dropout(x), items == self.pad)

    def calculate_loss(self, batch):
        items, neg = batch["items"], batch["neg"]
        table = self.item_encoder()
        states = self.encode(items[:, :-1], table)
        pos, neg = items[:, 1:], neg[:, 1:]
        real = pos != self.pad
        pos_logit = (states * table[pos]).sum(-1)[real]
        neg_logit = (states * table[neg]).sum(-1)[real]
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

    def _user_state(self, batch, table):
        return self.encode(batch["history"], table)[:, -1]

    def full_sort_predict(self, batch):
        table = self.item_encoder()
        return self._user_state(batch, table) @ table[: self.n_items].T

    def predict(self, batch):
        table = self.item_encoder()
        return (self._user_state(batch, table)[:, None, :] * table[batch["candidates"]]).sum(-1)
