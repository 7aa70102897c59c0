"""The interface every recommender implements (RecBole's shape).

A model is built from a prepared data set, an optional feature set and a flat dict of
hyper-parameters, so any grid row or CSV row rebuilds it. Item indices are 0-based; index
`n_items` is padding in histories.

Batches the trainer passes in:
- training, `input_type == "pairwise"`: users (B,), pos (B,), neg (B,)
- training, `input_type == "sequence"`: users (B,), items (B, L) left-padded training sequence
  (the last `train_length()` items), neg (B, L) one sampled negative per position (padding where
  items is padding)
- evaluation: users (B,), history (B, L) left-padded (sequence models only), and for `predict`
  candidates (B, C)

Evaluation: the trainer calls `eval()`, then `on_eval_start()` under no_grad, then the scoring
methods batch by batch. Models compute what every batch reuses (the item table, propagated
embeddings) in `on_eval_start` and keep it in `self.cache`; switching to training clears it.
"""
from __future__ import annotations

import abc
import math
from typing import ClassVar

import torch
from torch import nn

from protocol.config import DROPOUT, NON_NEGATIVE, POSITIVE, SIZE, build_settings
from protocol.errors import HarnessError
from protocol.evaluate import score_candidates
from recommenders.item_encoders import make_item_encoder, small_embedding
from recommenders.layers import TransformerEncoder, length_groups

COMMON_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 2048}
# What each setting accepts beyond its default's type (protocol.config; numbers must be finite).
COMMON_RULES = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "batch_size": SIZE}


class Recommender(nn.Module, abc.ABC):
    name: ClassVar[str] = ""
    input_type: ClassVar[str] = "pairwise"  # pairwise | sequence | none (nothing to train)
    defaults: ClassVar[dict] = {}
    rules: ClassVar[dict] = {}  # ranges of `defaults` (COMMON_RULES hold those of COMMON_DEFAULTS)
    relations: ClassVar[tuple] = ()  # rules across settings (protocol.config.Relation)
    uses_features: ClassVar[bool] = False  # True: the model cannot run without a feature set
    feature_params: ClassVar[tuple[str, ...]] = ()  # settings that only matter with features
    # A plugin's configs/models/<name>.yaml, beside its `defaults`: trainer settings (e.g.
    # {"max_epochs": 50}) and grid axes (e.g. {"lr": [1e-3, 1e-4]}). `train_defaults`, not `train`:
    # nn.Module.train is the method that switches training mode.
    train_defaults: ClassVar[dict] = {}
    grid: ClassVar[dict] = {}

    def __init__(self, dataset, features=None, **params):
        super().__init__()
        self.params = self.resolve_params(params)
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.pad = dataset.n_items
        self.cache: dict[str, torch.Tensor] = {}
        if features is None and self.uses_features:
            raise HarnessError(f"model '{self.name}' needs item features; run it with an extractor "
                               "(--extractor base | clip | qwenvl | sda).")
        if features is not None:
            features.check(dataset)

    @classmethod
    def source_config(cls) -> dict:
        """What configs/models/<model>.yaml holds for the project's models (defaults, train, grid),
        for a model named by its source; `defaults` stays empty: `resolve_params` adds the class's."""
        return {"defaults": {}, "train": cls.train_defaults, "grid": cls.grid}

    @classmethod
    def wants_features(cls, extractor: str) -> bool:
        """Whether a run with this extractor feeds a feature set to the model."""
        return cls.uses_features

    @classmethod
    def trains_teacher(cls, params: dict, has_features: bool) -> bool:
        """Whether a model with these (resolved) settings trains a teacher first (RAT's, in
        recommenders/rat.py): a cluster trains it once, as a job of its own, before the runs."""
        return False

    @classmethod
    def resolve_params(cls, params: dict) -> dict:
        return build_settings(f"model {cls.name}", COMMON_DEFAULTS | cls.defaults, params,
                              COMMON_RULES | cls.rules, cls.relations)

    def train(self, mode: bool = True):
        self.cache.clear()  # parameters change while training: what evaluation cached is stale
        return super().train(mode)

    def calculate_loss(self, batch: dict) -> torch.Tensor:
        raise HarnessError(f"model '{self.name}' has nothing to train.")

    @abc.abstractmethod
    def full_sort_predict(self, batch: dict) -> torch.Tensor:
        """Scores (B, n_items) for every item."""

    def predict(self, batch: dict) -> torch.Tensor:
        """Scores (B, C) for each row's candidates; models with a cheaper path override it."""
        return self.full_sort_predict(batch).gather(1, batch["candidates"])

    def score_factors(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(user vectors (B, H), item vectors (n_items, H)) whose dot products are the scores,
        for models that score that way (None otherwise): the evaluator then ranks the whole
        catalogue block by block instead of holding every score of the batch."""
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for models that refresh state per epoch."""

    def lr_factor(self, epoch: int) -> float:
        """The learning rate of (1-based) `epoch` is `lr` times this (a schedule; constant here)."""
        return 1.0

    def on_eval_start(self) -> None:
        """Fill `self.cache` with what every evaluation batch reuses (called under no_grad)."""


class DotProductRecommender(Recommender):
    """A model whose score is a user vector dotted with an item vector: subclasses fill
    `self.cache["items"]` in `on_eval_start` (rows past n_items, e.g. padding, are never scored)
    and define `user_vectors(batch)`; scoring is shared here."""

    @abc.abstractmethod
    def user_vectors(self, batch: dict) -> torch.Tensor:
        """(B, H) vectors of the batch's users (evaluation, after `on_eval_start`)."""

    def score_factors(self, batch):
        return self.user_vectors(batch), self.cache["items"][: self.n_items]

    def full_sort_predict(self, batch):
        return self.user_vectors(batch) @ self.cache["items"][: self.n_items].T

    def predict(self, batch):
        return score_candidates(self.user_vectors(batch), self.cache["items"], batch["candidates"])


SEQUENTIAL_DEFAULTS = {"hidden": 128, "n_blocks": 2, "n_heads": 1, "dropout": 0.5, "max_len": 200,
                       "batch_size": 512,
                       # RAT alignment (features only): weight, and epochs of its ID-SASRec teacher
                       "alpha": 0.1, "teacher_epochs": 200}
SEQUENTIAL_RULES = {"hidden": SIZE, "n_blocks": SIZE, "n_heads": SIZE, "dropout": DROPOUT, "max_len": SIZE,
                    # alpha 0 turns the alignment off; a teacher of 0 epochs would be random
                    "alpha": NON_NEGATIVE, "teacher_epochs": SIZE}
# The attention heads split the hidden vector: each takes hidden / n_heads dims.
SEQUENTIAL_RELATIONS = ((("n_heads", "hidden"), lambda n_heads, hidden: None if hidden % n_heads == 0 else
                         "n_heads must divide hidden (each head takes hidden / n_heads dims), e.g. n_heads=1"),)


class SequentialRecommender(DotProductRecommender):
    """Shared by SASRec and BERT4Rec: item vectors (IDs, or features through RAT), right-aligned
    position embeddings, a Transformer encoder, the RAT alignment loss; scores are `user_state` dotted with the item vectors.

    Subclasses define `calculate_loss` and `user_state(history, table)`.
    """

    input_type = "sequence"
    rules = SEQUENTIAL_RULES
    relations = SEQUENTIAL_RELATIONS
    feature_params = ("alpha", "teacher_epochs")

    @classmethod
    def wants_features(cls, extractor: str) -> bool:
        return extractor != "base"  # with Base features the paper's sequential rows use IDs

    @classmethod
    def trains_teacher(cls, params: dict, has_features: bool) -> bool:
        """Whether a model with these (resolved) settings trains RAT's ID-SASRec teacher."""
        return has_features and params["alpha"] > 0

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        p = self.params
        self.item_encoder = make_item_encoder(dataset, features, p["hidden"])
        self.position = small_embedding(p["max_len"], p["hidden"])
        self.emb_dropout = nn.Dropout(p["dropout"])
        # BERT4Rec is bidirectional; SASRec has a `causal` switch (off reproduces the reference code)
        self.encoder = TransformerEncoder(p["hidden"], p["n_blocks"], p["n_heads"], p["dropout"],
                                          causal=p.get("causal", False))
        self.alignment = None
        if self.trains_teacher(p, features is not None):
            from recommenders.rat import Alignment

            self.alignment = Alignment(dataset, p)  # last: its teacher may train now

    def train_length(self) -> int:
        """How many of a user's last training items one training row holds."""
        return self.params["max_len"]

    def encode(self, vectors: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """(B, L, H) left-padded item vectors -> (B, L, H) states; position max_len-1 is the last."""
        length = vectors.shape[1]
        positions = torch.arange(self.params["max_len"] - length, self.params["max_len"], device=vectors.device)
        x = self.emb_dropout(vectors * math.sqrt(vectors.shape[-1]) + self.position(positions))
        # Rows go through the encoder in groups of similar length, each trimmed to its longest
        # row: a batch mixes short and long histories, and padding would dominate the work.
        out = torch.zeros_like(x)
        for rows, width in length_groups((~pad).sum(1)):
            out[rows, length - width:] = self.encoder(x[rows, length - width:], pad[rows, length - width:])
        return out

    def align_loss(self, targets: torch.Tensor) -> torch.Tensor | float:
        """RAT's alpha-weighted alignment of the batch's target items (0 without features)."""
        return self.alignment(self.item_encoder, targets) if self.alignment is not None else 0.0

    @abc.abstractmethod
    def user_state(self, history: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded histories -> (B, H) vectors scored against item vectors."""

    def on_eval_start(self):
        self.cache["items"] = self.item_encoder()

    def user_vectors(self, batch):
        return self.user_state(batch["history"], self.cache["items"])
