"""GRU4Rec-style recommender: a GRU reads the user's history, its last state scores every item.

A harness plugin in one page. What the harness asks of it (recommenders/base.py):
- class settings: `name`, `input_type`, `defaults` (+ `rules`, their ranges), `grid`, `train_defaults`;
- `calculate_loss(batch)` for training and, through DotProductRecommender, `user_vectors(batch)` plus
  `self.cache["items"]` filled in `on_eval_start` for scoring.
Item vectors are learnable IDs, plus a projection of the run's item features when it has a feature
set (`--extractor tfidf | clip ...`; `base` means IDs alone, as for the paper's SASRec rows).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import DROPOUT, SIZE
from recommenders.base import DotProductRecommender


class GRU4Rec(DotProductRecommender):
    name = "gru4rec"
    input_type = "sequence"  # batches hold left-padded histories (index n_items is padding)
    # max_len: how many of a user's last items it reads, in training and evaluation
    defaults = {"hidden": 64, "dropout": 0.2, "max_len": 50, "batch_size": 256}
    rules = {"hidden": SIZE, "dropout": DROPOUT, "max_len": SIZE}  # refused before anything runs
    grid = {"hidden": [32, 64]}  # `harness grid` and plans search this, picked on validation
    train_defaults = {"max_epochs": 30, "patience": 5}

    @classmethod
    def wants_features(cls, extractor: str) -> bool:
        # As the paper's sequential rows: with `base` the model learns IDs alone; any other
        # extractor's features feed the item vectors.
        return extractor != "base"

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)  # resolves and checks self.params
        hidden = self.params["hidden"]
        self.ids = nn.Embedding(self.n_items + 1, hidden, padding_idx=self.pad)
        nn.init.normal_(self.ids.weight, std=0.02)  # small, as RecBole starts embeddings
        with torch.no_grad():
            self.ids.weight[self.pad].zero_()
        self.project = None
        if features is not None:  # [image | text] per item, frozen; a learned projection to `hidden`
            table = torch.from_numpy(features.sequential_table())
            self.register_buffer("features", torch.cat([table, torch.zeros(1, table.shape[1])]))  # + padding row
            self.project = nn.Linear(table.shape[1], hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.dropout = nn.Dropout(self.params["dropout"])

    def train_length(self) -> int:
        return self.params["max_len"] + 1  # max_len inputs, each predicting the next item

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, hidden) item vectors; the last row is padding."""
        table = self.ids.weight
        if self.project is not None:
            table = table + self.project(self.features)
        return table

    def states(self, history: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded histories -> (B, L, hidden) GRU states after each position. Padding
        leaves the state as it was, so a history scores the same whatever padding its batch adds
        (the harness's contract checks this: scored alone and in a batch must agree)."""
        inputs, real = self.dropout(table[history]), (history != self.pad).unsqueeze(-1)
        state = inputs.new_zeros(history.shape[0], self.params["hidden"])
        out = []
        for t in range(history.shape[1]):
            state = torch.where(real[:, t], self.cell(inputs[:, t], state), state)
            out.append(state)
        return torch.stack(out, 1)

    def calculate_loss(self, batch: dict) -> torch.Tensor:
        """BCE of each next item against one sampled negative (as SASRec trains)."""
        items, neg = batch["items"], batch["neg"]
        table = self.item_table()
        states = self.states(items[:, :-1], table)
        real = (items[:, :-1] != self.pad) & (items[:, 1:] != self.pad)  # a history and a next item
        states = states[real]
        pos = (states * table[items[:, 1:][real]]).sum(-1)
        negative = (states * table[neg[:, 1:][real]]).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative)))

    def on_eval_start(self) -> None:
        self.cache["items"] = self.item_table()  # computed once per evaluation, reused by every batch

    def user_vectors(self, batch: dict) -> torch.Tensor:
        return self.states(batch["history"], self.cache["items"])[:, -1]
