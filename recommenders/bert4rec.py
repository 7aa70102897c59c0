"""BERT4Rec (LLMEmb settings): bidirectional attention, cloze training, BCE with one negative.

Each training row appears twice per batch, as in LLMEmb's data set: once with every item
chosen with probability `mask_prob` (of the chosen: 80% become [mask], 10% a random item, 10%
stay), once with only its last item masked, the shape of a prediction. Prediction appends a
[mask] token to the history and scores items against its output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import interval
from recommenders.base import SEQUENTIAL_DEFAULTS, SEQUENTIAL_RULES, SequentialRecommender


class BERT4Rec(SequentialRecommender):
    name = "bert4rec"
    defaults = SEQUENTIAL_DEFAULTS | {"mask_prob": 0.6}
    # 0 would choose no item to predict but each row's last
    rules = SEQUENTIAL_RULES | {"mask_prob": interval(0, 1, low_open=True)}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        # The [mask] token's input vector (LLMEmb's mask_embedding), for ID and RAT items alike.
        self.mask_vector = nn.Parameter(torch.randn(self.params["hidden"]) * 0.02)

    def cloze(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, chosen, masked): input ids after corruption, positions to predict, and those of
        them whose input is the [mask] token."""
        chosen = (torch.rand(items.shape, device=items.device) < self.params["mask_prob"]) & (items != self.pad)
        roll = torch.rand(items.shape, device=items.device)
        masked = chosen & (roll < 0.8)
        randomised = chosen & (roll >= 0.8) & (roll < 0.9)
        noise = torch.randint(0, self.n_items, items.shape, device=items.device)
        return torch.where(randomised, noise, items), chosen, masked

    def calculate_loss(self, batch):
        items, neg = batch["items"], batch["neg"]
        inputs, chosen, masked = self.cloze(items)
        last = torch.zeros_like(chosen)
        last[:, -1] = True  # rows are left-padded and hold at least two items
        inputs, chosen, masked = torch.cat([inputs, items]), torch.cat([chosen, last]), torch.cat([masked, last])
        targets = torch.cat([items, items])
        # The copy's negative for its last item comes from the position before: each position's
        # negative is an independent draw for the same user, so no pair is used twice.
        negatives = torch.cat([neg, neg.roll(1, dims=1)])

        vectors = torch.where(masked[..., None], self.mask_vector, self.item_encoder(inputs))
        states = self.encode(vectors, inputs == self.pad)[chosen]
        pos_vectors, neg_vectors = self.item_encoder(torch.stack([targets[chosen], negatives[chosen]]))
        pos_logit = (states * pos_vectors).sum(-1)
        neg_logit = (states * neg_vectors).sum(-1)
        bce = (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
               + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))
        return bce + self.align_loss(targets[chosen])

    def user_state(self, history, table):
        b, max_len = len(history), self.params["max_len"]
        vectors = torch.cat([table[history], self.mask_vector.expand(b, 1, -1)], 1)[:, -max_len:]
        pad = torch.cat([history == self.pad, history.new_zeros(b, 1, dtype=torch.bool)], 1)[:, -max_len:]
        return self.encode(vectors, pad)[:, -1]
