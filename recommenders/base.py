"""The interface every recommender implements (RecBole's shape).

A model is built from a prepared data set, an optional feature set and a flat dict of
hyper-parameters, so any grid row or CSV row rebuilds it. Item indices are 0-based; index
`n_items` is padding in histories.

Batches the trainer passes in:
- training, `input_type == "pairwise"`: users (B,), pos (B,), neg (B,)
- training, `input_type == "sequence"`: users (B,), items (B, L) left-padded training sequence,
  neg (B, L) one sampled negative per position (padding where items is padding)
- evaluation: users (B,), history (B, L) left-padded (sequence models only), and for `predict`
  candidates (B, C)
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from harness.config import build_settings
from harness.errors import HarnessError

COMMON_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 2048}


class Recommender(nn.Module):
    name: ClassVar[str] = ""
    input_type: ClassVar[str] = "pairwise"  # pairwise | sequence | none (nothing to train)
    defaults: ClassVar[dict] = {}
    uses_features: ClassVar[bool] = False

    def __init__(self, dataset, features=None, **params):
        super().__init__()
        self.params = self.resolve_params(params)
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.pad = dataset.n_items

    @classmethod
    def wants_features(cls, extractor: str) -> bool:
        """Whether a run with this extractor feeds a feature set to the model."""
        return cls.uses_features

    @classmethod
    def resolve_params(cls, params: dict) -> dict:
        return build_settings(f"model {cls.name}", COMMON_DEFAULTS | cls.defaults, params)

    def calculate_loss(self, batch: dict) -> torch.Tensor:
        raise HarnessError(f"model '{self.name}' has nothing to train.")

    def full_sort_predict(self, batch: dict) -> torch.Tensor:
        """Scores (B, n_items) for every item."""
        raise NotImplementedError  # every concrete model defines it

    def predict(self, batch: dict) -> torch.Tensor:
        """Scores (B, C) for each row's candidates; models with a cheaper path override it."""
        return self.full_sort_predict(batch).gather(1, batch["candidates"])

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for models that refresh state per epoch."""

    def on_eval_start(self) -> None:
        """Hook for models that cache what evaluation reuses (e.g. propagated embeddings)."""
