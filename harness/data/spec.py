"""What a data set is made from: configs/datasets/<name>.yaml, one source per profile."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import REPO_ROOT, build, load_group, profile_name
from harness.errors import HarnessError


@dataclass
class DatasetSpec:
    name: str
    domain: str = "item"  # the word in the extractors' prompts ("The beauty item has ...")
    source: str = "sequences"  # sequences (P5-style folder) | amazon (raw 2014 files)
    path: str = ""  # sequences: folder with sequences.txt + items.tsv
    reviews: str = ""  # amazon: reviews_<Cat>.json.gz or the 5-core reviews file
    ratings: str = ""  # amazon: ratings_<Cat>.csv (user,item,rating,time; no header)
    meta: str = ""  # amazon: meta_<Cat>.json.gz (Python-literal lines)
    image_features: str = ""  # amazon: image_features_<Cat>.b (optional)
    recipe: str = "llmemb"  # llmemb (single pass, the paper's) | kcore (iterative)
    min_count: int = 5  # interactions a user and an item need in the recipe's filter
    min_user_len: int = 3  # users with fewer interactions after filtering are dropped
    n_negatives: int = 100
    negative_seed: int = 2024
    tail_threshold: int = 4  # an item is tail when it has fewer interactions than this
    images: str = "none"  # none | render (synthetic images for bundled mini data)

    def resolve(self, value: str) -> Path:
        """Relative paths in dataset configs are relative to the repository root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    def recipe_settings(self) -> dict:
        """The settings that change the prepared content (the dataset directory's key)."""
        keys = ("source", "recipe", "min_count", "min_user_len", "n_negatives",
                "negative_seed", "tail_threshold", "images")
        return {k: getattr(self, k) for k in keys}


def dataset_spec(name: str, profile: str | None = None, overrides: dict | None = None) -> DatasetSpec:
    """The spec of data set `name` under `profile` (a file's `profiles:` block picks the source)."""
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
