"""What a data set is made from: configs/datasets/<name>.yaml, one source per profile."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import REPO_ROOT, at_least, build, load_group, profile_name
from harness.data.recipes import RECIPES
from harness.errors import HarnessError


@dataclass
class DatasetSpec:
    name: str
    domain: str = "item"  # the word in the extractors' prompts ("The beauty item has ...")
    source: str = field(default="sequences", metadata={"rule": ("sequences", "amazon")})  # P5-style folder | raw 2014 files
    path: str = ""  # sequences: folder with sequences.txt + items.tsv
    reviews: str = ""  # amazon: reviews_<Cat>.json.gz or the 5-core reviews file
    ratings: str = ""  # amazon: ratings_<Cat>.csv (user,item,rating,time; no header)
    meta: str = ""  # amazon: meta_<Cat>.json.gz (Python-literal lines)
    image_features: str = ""  # amazon: image_features_<Cat>.b (optional)
    # llmemb (single pass, the paper's) | kcore (iterative) | none
    recipe: str = field(default="llmemb", metadata={"rule": RECIPES})
    # interactions a user and an item need in the recipe's filter
    min_count: int = field(default=5, metadata={"rule": at_least(1)})
    # users with fewer interactions after filtering are dropped (3: a training item, valid, test)
    min_user_len: int = field(default=3, metadata={"rule": at_least(3)})
    n_negatives: int = field(default=100, metadata={"rule": at_least(1)})
    negative_seed: int = 2024
    # an item is tail when it has fewer interactions than this
    tail_threshold: int = field(default=4, metadata={"rule": at_least(1)})
    # none | render (synthetic images for bundled mini data)
    images: str = field(default="none", metadata={"rule": ("none", "render")})

    def resolve(self, value: str) -> Path:
        """Relative paths in dataset configs are relative to the repository root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    def recipe_settings(self) -> dict:
        """The settings that change the prepared content (the dataset directory's key)."""
        keys = ("source", "recipe", "min_count", "min_user_len", "n_negatives",
                "negative_seed", "tail_threshold", "images")
        return {k: getattr(self, k) for k in keys}


def is_sequences_folder(value: str) -> bool:
    return (Path(value).expanduser() / "sequences.txt").is_file()


def folder_spec(folder: str, name: str | None = None, overrides: dict | None = None) -> DatasetSpec:
    """A folder of sequences.txt + items.tsv with the 5-core sets' settings (already filtered:
    recipe none; DatasetSpec's tail threshold, negatives and seed), saying what it assumed."""
    path = Path(folder).expanduser().resolve()
    name = name or path.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise HarnessError(f"'{name}' cannot name a data set; give --name with letters, digits, '.', '_' or '-'.")
    values = {"recipe": "none", **(overrides or {}), "source": "sequences", "path": str(path), "name": name}
    spec = build(DatasetSpec, values, f"data set folder {path}")
    print(f"{path}: a sequences source named '{name}'; assumed recipe={spec.recipe}, "
          f"tail_threshold={spec.tail_threshold}, n_negatives={spec.n_negatives}, "
          f"negative_seed={spec.negative_seed}, domain={spec.domain} (change any with key=value).")
    return spec


def dataset_spec(name: str, profile: str | None = None, overrides: dict | None = None) -> DatasetSpec:
    """The spec of data set `name` under `profile` (a file's `profiles:` block picks the source),
    or of a folder holding sequences.txt + items.tsv (folder_spec)."""
    if is_sequences_folder(name):
        return folder_spec(name, None, overrides)
    if "/" in name:
        raise HarnessError(f"{name} is not a folder with sequences.txt and items.tsv, nor a prepared data set.")
    raw = load_group("datasets", name)
    profile = profile_name(profile)
    per_profile = raw.pop("profiles", {}) or {}
    if per_profile and profile not in per_profile:
        raise HarnessError(
            f"data set '{name}' has no source for profile '{profile}'; "
            f"use one of {sorted(per_profile)} or add it to configs/datasets/{name}.yaml."
        )
    values = {**raw, **per_profile.get(profile, {}), **(overrides or {}), "name": name}
    return build(DatasetSpec, values, f"configs/datasets/{name}.yaml")
