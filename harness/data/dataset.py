"""A prepared data set loaded into memory: splits, fixed negatives, tail flags."""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from harness.data.build import CONTENT_FILES, FORMAT_VERSION, tail_items
from harness.errors import HarnessError
from harness.fileio import read_json, stable_key

SPLITS = ("valid", "test")


class Dataset:
    """Read-only view of a dataset directory. Items and users are 0-based indices."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        missing = [f for f in (*CONTENT_FILES, "meta.json") if not (self.path / f).exists()]
        if missing:
            raise HarnessError(f"{self.path} is not a prepared data set (no {missing[0]}); "
                               "run `python -m harness data prepare` first.")
        self.meta = read_json(self.path / "meta.json")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise HarnessError(f"{self.path} was prepared by another harness version; prepare it again.")
        self.name: str = self.meta["name"]
        self.content_hash: str = self.meta["content_hash"]
        rows = pd.read_csv(self.path / "interactions.csv")
        self.n_users = int(self.meta["stats"]["users"])
        self.n_items = int(self.meta["stats"]["items"])
        users, items, split = rows["user"].to_numpy(), rows["item"].to_numpy(), rows["split"].to_numpy()
        train = split == "train"
        self.train_users, self.train_items = users[train], items[train]
        self.targets = {s: self._per_user(users, items, split == s) for s in SPLITS}
        self.negatives = {s: np.load(self.path / f"negatives_{s}.npy") for s in SPLITS}
        self.item_popularity = np.bincount(items, minlength=self.n_items)
        self.item_is_tail = tail_items(self.item_popularity, int(self.meta["recipe"]["tail_threshold"]))

    def _per_user(self, users, items, mask) -> np.ndarray:
        out = np.full(self.n_users, -1, dtype=np.int64)
        out[users[mask]] = items[mask]
        return out

    @cached_property
    def items(self) -> pd.DataFrame:
        table = pd.read_csv(self.path / "items.csv", keep_default_na=False)
        table["meta"] = table["meta"].map(json.loads)
        return table

    @cached_property
    def image_files(self) -> list[str]:
        """Per item, its image as the extractors read it: the `image` value when it names a local
        file, else the file `data images` fetched into images/, else the value as it is (a URL or
        empty: the extractors count it as missing)."""
        from harness.data.images import local_images

        fetched = local_images(self.path)
        files = []
        for index, value in enumerate(self.items["image"].astype(str)):
            local = bool(value) and "://" not in value and (self.path / value).is_file()
            files.append(value if local else fetched.get(index, value))
        return files

    def images_fingerprint(self) -> str:
        """Names and sizes of the files under images/: changes when images are fetched or
        replaced, so feature caches keyed on it are not reused across image changes."""
        files = sorted(p for p in (self.path / "images").glob("*") if not p.name.startswith("."))
        return stable_key([(p.name, p.stat().st_size) for p in files])

    @cached_property
    def train_sequences(self) -> list[np.ndarray]:
        """Each user's training items in time order."""
        bounds = np.searchsorted(self.train_users, np.arange(self.n_users + 1))
        return [self.train_items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def history(self, split: str) -> list[np.ndarray]:
        """The items a model may see when predicting `split`'s target (time order)."""
        if split == "valid":
            return self.train_sequences
        return [np.append(s, v) for s, v in zip(self.train_sequences, self.targets["valid"])]

    def candidates(self, split: str) -> np.ndarray:
        """(n_users, 1 + n_negatives): the target first, then the fixed negatives."""
        return np.concatenate([self.targets[split][:, None], self.negatives[split]], axis=1)

    def tail_users(self, split: str) -> np.ndarray:
        """Users whose `split` target is a tail item."""
        return self.item_is_tail[self.targets[split]]

    @cached_property
    def interaction_matrix(self) -> sp.csr_matrix:
        """All of each user's items (train, valid and test): what full ranking masks."""
        users = np.concatenate([self.train_users, np.arange(self.n_users), np.arange(self.n_users)])
        items = np.concatenate([self.train_items, self.targets["valid"], self.targets["test"]])
        return sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                             shape=(self.n_users, self.n_items))

    @cached_property
    def train_keys(self) -> np.ndarray:
        """Sorted user * n_items + item over training pairs (fast membership tests)."""
        return np.unique(self.train_users * self.n_items + self.train_items)

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.ones(len(self.train_users), dtype=np.float32), (self.train_users, self.train_items)),
            shape=(self.n_users, self.n_items))

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, path={self.path})"
