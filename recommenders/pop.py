"""Popularity: scores an item by its number of training interactions (a sanity baseline)."""
from __future__ import annotations

import numpy as np
import torch

from recommenders.base import Recommender


class Pop(Recommender):
    name = "pop"
    input_type = "none"

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        counts = np.bincount(dataset.train_items, minlength=dataset.n_items).astype(np.float32)
        self.register_buffer("counts", torch.from_numpy(counts))

    def full_sort_predict(self, batch):
        return self.counts.expand(len(batch["users"]), -1)

    def predict(self, batch):
        return self.counts[batch["candidates"]]
