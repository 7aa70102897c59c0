"""SASRec (LLMEmb settings): causal self-attention over the history, BCE with one negative."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from recommenders.base import SEQUENTIAL_DEFAULTS, SequentialRecommender


class SASRec(SequentialRecommender):
    name = "sasrec"
    defaults = SEQUENTIAL_DEFAULTS | {"causal": True}

    def train_length(self) -> int:
        return self.params["max_len"] + 1  # max_len inputs, each predicting the next item

    def calculate_loss(self, batch):
        items, neg = batch["items"], batch["neg"]
        vectors, neg_vectors = self.item_encoder(torch.stack([items, neg]))  # one lookup for both
        states = self.encode(vectors[:, :-1], items[:, :-1] == self.pad)
        real = items[:, 1:] != self.pad  # positions with a next item
        states = states[real]
        pos_logit = (states * vectors[:, 1:][real]).sum(-1)
        neg_logit = (states * neg_vectors[:, 1:][real]).sum(-1)
        bce = (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
               + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))
        return bce + self.align_loss(items[:, 1:][real])

    def user_state(self, history, table):
        return self.encode(table[history], history == self.pad)[:, -1]
