"""A prepared data set loaded into memory: splits, fixed negatives, tail flags."""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from protocol.data.build import CONTENT_FILES, FORMAT_VERSION, tail_items
from protocol.errors import HarnessError
from protocol.fileio import changed_files, files_sha256, read_json, stable_key, unreadable

SPLITS = ("valid", "test")


class Dataset:
    """Read-only view of a dataset directory. Items and users are 0-based indices.

    Loading checks every content file against its hash in meta.json, so a truncated or edited
    file is named with `rebuild` (the command that prepares this directory again) instead of
    being read as data. `rebuild` is known when the data set was asked for by name or source
    folder, else meta.json holds it; where neither tells, the message names the command's form.
    """

    def __init__(self, path: str | Path, rebuild: str | None = None):
        self.path = Path(path)
        self.rebuild = rebuild or (f"`python -m harness data prepare --dataset SOURCE --out {self.path} --force` "
                                   "(SOURCE: the data set name or folder it was prepared from)")
        missing = [f for f in (*CONTENT_FILES, "meta.json") if not (self.path / f).exists()]
        if missing:
            raise HarnessError(f"{self.path} is not a prepared data set (no {missing[0]}); "
                               f"prepare it with {self.rebuild}.")
        self.meta = self._read_meta()
        self.rebuild = rebuild or self.meta.get("rebuild") or self.rebuild
        self._check_content()
        self.name: str = self.meta["name"]
        self.content_hash: str = self.meta["content_hash"]
        self.n_users = int(self.meta["stats"]["users"])
        self.n_items = int(self.meta["stats"]["items"])
        try:
            rows = pd.read_csv(self.path / "interactions.csv")
            users, items, split = rows["user"].to_numpy(), rows["item"].to_numpy(), rows["split"].to_numpy()
            self.negatives = {s: np.load(self.path / f"negatives_{s}.npy") for s in SPLITS}
        except (OSError, ValueError, KeyError) as err:  # only where meta.json's hashes could not tell
            raise self.damaged("", f"interactions.csv or negatives_*.npy: {type(err).__name__}: {err}") from None
        train = split == "train"
        self.train_users, self.train_items = users[train], items[train]
        self.targets = {s: self._per_user(users, items, split == s) for s in SPLITS}
        self.item_popularity = np.bincount(items, minlength=self.n_items)
        self.item_is_tail = tail_items(self.item_popularity, int(self.meta["recipe"]["tail_threshold"]))

    def damaged(self, file: str, why: str) -> HarnessError:
        return HarnessError(f"{self.path / file} is damaged ({why}); rebuild the data set with {self.rebuild}.")

    def _read_meta(self) -> dict:
        try:
            meta = read_json(self.path / "meta.json")
        except OSError as err:
            raise unreadable(self.path / "meta.json", err) from None
        except ValueError as err:  # not JSON (JSONDecodeError, UnicodeDecodeError)
            raise self.damaged("meta.json", f"not JSON: {err}") from None
        if not isinstance(meta, dict) or meta.get("format_version") is None:
            raise self.damaged("meta.json", "no format_version")
        if meta["format_version"] != FORMAT_VERSION:
            raise HarnessError(f"{self.path} was prepared by another harness version; prepare it again "
                               f"with {self.rebuild}.")
        try:
            meta["name"], meta["content_hash"], meta["recipe"]["tail_threshold"]
            int(meta["stats"]["users"]), int(meta["stats"]["items"])
        except (KeyError, TypeError, ValueError) as err:
            raise self.damaged("meta.json", f"no valid {err}") from None
        return meta

    def _check_content(self) -> None:
        """Every content file against meta.json: per file where it records them, else the
        combined content hash (data sets prepared before per-file hashes)."""
        try:
            recorded = self.meta.get("files")
            if isinstance(recorded, dict):
                changed = changed_files(self.path, {f: recorded.get(f, "") for f in CONTENT_FILES})
            else:
                if files_sha256(self.path / f for f in CONTENT_FILES) != self.meta["content_hash"]:
                    raise self.damaged("", f"one of {', '.join(CONTENT_FILES)} does not match the "
                                           "content hash in meta.json")
                changed = []
        except OSError as err:
            raise unreadable(err.filename or self.path, err) from None
        if changed:
            raise self.damaged(changed[0], "its content does not match its hash in meta.json: "
                                           "changed or cut short after `prepare` wrote it")

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
        from protocol.data.images import local_images

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


def first_category_path(categories) -> str:
    """Amazon's categories are a list of paths; the prompt uses the first, joined with ", "."""
    if isinstance(categories, str):
        try:
            categories = json.loads(categories)
        except json.JSONDecodeError:
            return categories  # already a plain label
    if not categories:
        return ""
    first = categories[0]
    return ", ".join(map(str, first)) if isinstance(first, (list, tuple)) else ", ".join(map(str, categories))
