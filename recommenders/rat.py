"""RAT (LLMEmb): a frozen item feature table adapted to the recommender's hidden size, plus an
alignment loss that pulls the adapted vectors towards a frozen ID-SASRec's item embeddings.

The teacher is an ID-SASRec with the student's architecture and optimiser settings, trained once
per (data set, settings) and cached under artifacts/rat/; a grid over alpha reuses it.
"""
from __future__ import annotations

import dataclasses
import fcntl

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# LLMEmb's soft-target CLIP loss is SDA's CMSA: one implementation (torch only, cheap to import)
from extractors.sda.loss import cmsa
from protocol.config import artifacts_dir
from protocol.fileio import save_npy, stable_key

WIDTH = 768  # the adapter's intermediate width (LLMEmb: half of its 1536-d LLM embedding)
TAU = 2.0  # temperature of the soft-CLIP alignment (LLMEmb's tau)
ALIGN_ITEMS = 1024  # at most this many distinct target items per batch in the alignment loss
TEACHER_SETTINGS = ("hidden", "n_blocks", "n_heads", "dropout", "max_len", "lr", "weight_decay", "batch_size")


class RATAdapter(nn.Module):
    """Frozen table [image ‖ text] -> Linear(d -> 768) -> Linear(768 -> hidden), no activation."""

    def __init__(self, table: np.ndarray, hidden: int):
        super().__init__()
        features = np.vstack([table, np.zeros((1, table.shape[1]), dtype=np.float32)])  # padding row
        # A buffer, not a parameter: never trained, and left out of checkpoints (it is the feature set).
        self.register_buffer("features", torch.from_numpy(features), persistent=False)
        self.down = nn.Linear(table.shape[1], WIDTH)
        self.up = nn.Linear(WIDTH, hidden)

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        # Two affine maps without an activation are one: applying the (hidden x d) product gives
        # the same values and gradients with ~6x fewer FLOPs than the 768-wide intermediate.
        weight = self.up.weight @ self.down.weight
        bias = self.up(self.down.bias)
        if ids is None:
            return F.linear(self.features, weight, bias)
        unique, inverse = torch.unique(ids, return_inverse=True)  # each distinct item once
        # F.embedding rather than indexing: its backward sums repeated rows in a fixed order
        return F.embedding(inverse, F.linear(self.features[unique], weight, bias))


class Alignment(nn.Module):
    """alpha * soft-CLIP between RAT vectors and the frozen teacher's embeddings of the same items.

    LLMEmb aligns every target position of a batch (its batches hold 128 users); we align the
    batch's distinct target items, at most ALIGN_ITEMS of them drawn at random, so the square
    logits stay small with 512 users and long sequences.
    """

    def __init__(self, dataset, params: dict):
        super().__init__()
        self.alpha = params["alpha"]
        self.register_buffer("teacher", torch.from_numpy(teacher_embeddings(dataset, params)), persistent=False)

    def forward(self, encoder: nn.Module, targets: torch.Tensor) -> torch.Tensor:
        items = torch.unique(targets)
        if len(items) > ALIGN_ITEMS:
            items = items[torch.randperm(len(items), device=items.device)[:ALIGN_ITEMS]]
        return self.alpha * cmsa(self.teacher[items], encoder(items), TAU)


def teacher_embeddings(dataset, params: dict) -> np.ndarray:
    """(n_items, hidden) item embeddings of an ID-SASRec trained on `dataset`, cached by content."""
    from recommenders import MODELS  # the registry, not recommenders.sasrec: SASRec's base imports this module
    from recommenders.trainer import TrainConfig, Trainer, seed_everything

    SASRec = MODELS.get("sasrec")

    settings = {k: params[k] for k in TEACHER_SETTINGS}
    config = TrainConfig(max_epochs=params["teacher_epochs"], full_ranking=False)
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("device", "progress", "threads")}
    key = stable_key({"data": dataset.content_hash, "model": settings, "train": recipe})
    path = artifacts_dir() / "rat" / f"teacher-{dataset.name}-{key}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel grid workers: one trains, the others wait and load
        if not path.exists():
            # The teacher must not shift the student's random stream, cached or not.
            with torch.random.fork_rng(devices=[]):
                seed_everything(config.seed)
                teacher = SASRec(dataset, None, **settings)
                trainer = Trainer(teacher, dataset, config)
                trainer.fit()
                save_npy(path, teacher.item_encoder()[: dataset.n_items].detach().cpu().numpy())
    return np.load(path)
