"""The feature set (DESIGN contract 2): image_feat.npy + text_feat.npy + meta.json.

Rows are items in dataset order (float32; MMRec's file names). meta.json records the
extractor, model id and revision, prompt and pooling settings, dims, the dataset content
hash and the cache key derived from all of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protocol.errors import HarnessError
from protocol.fileio import atomic_dir, changed_files, file_sha256, read_json, write_json

FILES = ("image_feat.npy", "text_feat.npy", "meta.json")
ARRAYS = FILES[:2]  # their sha256 are in meta.json ("files"): a load notices rows edited or reordered
MODALITIES = ("both", "text", "image")


def check_modalities(modalities: str) -> str:
    """`modalities` if it names a view (both, text, image), else the one-line error."""
    if modalities not in MODALITIES:
        raise HarnessError(f"extractor.modalities={modalities} is not one of {', '.join(MODALITIES)}.")
    return modalities


@dataclass
class FeatureSet:
    image: np.ndarray
    text: np.ndarray
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def key(self) -> str:
        return self.meta.get("key", "")

    def sequential_table(self) -> np.ndarray:
        """`[image ‖ text]` per item: the sequential models' frozen input table."""
        return np.concatenate([self.image, self.text], axis=1).astype(np.float32)

    def view(self, modalities: str) -> "FeatureSet":
        """Only one modality's information (`text` or `image`; `both` is the set itself): the other
        becomes a constant column, so every model keeps its architecture but learns nothing from
        it (Figure 3's text-only and image-only inputs)."""
        if check_modalities(modalities) == "both":
            return self
        constant = np.ones((self.image.shape[0], 1), dtype=np.float32)
        image, text = (constant, self.text) if modalities == "text" else (self.image, constant)
        return FeatureSet(image, text, self.meta | {"modalities": modalities}, self.path)

    def check(self, dataset) -> "FeatureSet":
        """Refuse a feature set made for another data set, or one holding NaN/inf values."""
        where = self.path or "feature set"
        if self.meta.get("dataset_hash") != dataset.content_hash:
            raise HarnessError(
                f"{where} was made for data set hash {self.meta.get('dataset_hash')}, not "
                f"{dataset.content_hash} ({dataset.name}); extract features for this data set again.")
        for name, arr in (("image", self.image), ("text", self.text)):
            if arr.ndim != 2 or arr.shape[0] != dataset.n_items:
                raise HarnessError(f"{where}: {name} features have shape {arr.shape}, but the data set "
                                   f"has {dataset.n_items} items; extract features again.")
            if not np.isfinite(arr).all():
                raise HarnessError(f"{where}: {name} features hold NaN or infinite values; "
                                   "extract them again (check the extractor's dtype and inputs).")
        return self

    def save(self, path: Path) -> Path:
        meta = self.meta | {"image_dim": int(self.image.shape[1]), "text_dim": int(self.text.shape[1]),
                            "items": int(self.image.shape[0])}
        with atomic_dir(path) as tmp:
            np.save(tmp / "image_feat.npy", np.ascontiguousarray(self.image, dtype=np.float32))
            np.save(tmp / "text_feat.npy", np.ascontiguousarray(self.text, dtype=np.float32))
            meta["files"] = {name: file_sha256(tmp / name) for name in ARRAYS}
            write_json(tmp / "meta.json", meta)
        self.path, self.meta = Path(path), meta
        return self.path

    @classmethod
    def load(cls, path: Path, dataset=None) -> "FeatureSet":
        path = Path(path)
        missing = [f for f in FILES if not (path / f).exists()]
        if missing:
            raise HarnessError(f"{path} is not a feature set (no {missing[0]}); run "
                               "`python -m harness extract` for it.")
        try:
            meta = read_json(path / "meta.json")
            if not isinstance(meta, dict):
                raise ValueError("meta.json holds no mapping")
            # Sets saved before the hashes were recorded have none to check.
            changed = changed_files(path, meta.get("files") or {})
            if changed:
                raise HarnessError(f"the feature set {path} is damaged: {changed[0]} does not match its hash in "
                                   f"meta.json (changed, cut short or reordered); {_extract_again(meta)}")
            features = cls(np.load(path / "image_feat.npy"), np.load(path / "text_feat.npy"), meta, path)
        except (OSError, ValueError, EOFError) as err:  # truncated or overwritten files (JSON errors are ValueErrors)
            raise HarnessError(f"the feature set {path} is damaged ({type(err).__name__}: {err}); "
                               f"{_extract_again({})}") from None
        return features.check(dataset) if dataset is not None else features


def _extract_again(meta: dict) -> str:
    """The fix of a damaged feature set: its extract command, as far as meta.json names it."""
    extractor, dataset = meta.get("extractor", "NAME"), meta.get("dataset", "DATASET")
    return (f"extract it again with `python -m harness extract --extractor {extractor} --dataset {dataset} "
            "--force` (with the settings it was made with), or delete the folder.")
