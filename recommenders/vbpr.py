"""VBPR as in MMRec: user = 2d; item = [ID embedding d ‖ Linear(concat(text, image) -> d)];
BPR with one uniform negative + reg_weight * (‖u‖ + ‖i⁺‖ + ‖i⁻‖) / B (Frobenius norms of the batch).

MMRec projects every item's features on every batch; the loss only needs the batch's items, so
we project those (the same model and gradients, a fraction of the work; gathered and multiplied
in cache-sized chunks, see projection.py), and the whole catalogue once per evaluation.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import NON_NEGATIVE, SIZE
from recommenders.base import DotProductRecommender
from recommenders.projection import project_rows


class VBPR(DotProductRecommender):
    name = "vbpr"
    uses_features = True
    defaults = {"embedding_size": 128, "reg_weight": 0.1}
    rules = {"embedding_size": SIZE, "reg_weight": NON_NEGATIVE}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        d = self.params["embedding_size"]
        raw = np.concatenate([features.text, features.image], axis=1).astype(np.float32)
        self.register_buffer("features", torch.from_numpy(raw), persistent=False)  # frozen input
        # MMRec's initialisation: xavier-uniform embeddings, xavier-normal projection, zero bias.
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, 2 * d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))
        self.item_linear = nn.Linear(raw.shape[1], d)
        nn.init.xavier_normal_(self.item_linear.weight)
        nn.init.zeros_(self.item_linear.bias)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """[ID ‖ projected features] for `items`, or for every item."""
        embedding = self.item_embedding if items is None else self.item_embedding[items]
        projected = project_rows(self.features, items, self.item_linear.weight) + self.item_linear.bias
        return torch.cat([embedding, projected], -1)

    def calculate_loss(self, batch):
        users, pos, neg = batch["users"], batch["pos"], batch["neg"]
        items, inverse = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        # F.embedding rather than indexing: rows repeat, and its backward sums them in a fixed order
        pos_e, neg_e = F.embedding(inverse, self.item_vectors(items)).split(len(pos))
        user_e = F.embedding(users, self.user_embedding)
        diff = (user_e * pos_e).sum(1) - (user_e * neg_e).sum(1)
        bpr = -torch.log(1e-10 + torch.sigmoid(diff)).mean()  # MMRec's BPRLoss, gamma included
        reg = (user_e.norm() + pos_e.norm() + neg_e.norm()) / len(users)  # MMRec's EmbLoss
        return bpr + self.params["reg_weight"] * reg

    def on_eval_start(self):
        self.cache["items"] = self.item_vectors()

    def user_vectors(self, batch):
        return self.user_embedding[batch["users"]]
