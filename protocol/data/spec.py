"""What a data set is made from: configs/datasets/<name>.yaml, one source per profile."""
from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from protocol.config import (CONFIG_DIR, REPO_ROOT, at_least, build, config_names, config_path, load_group,
                             profile_name, raw_dir)
from protocol.data.recipes import RECIPES
from protocol.errors import HarnessError
from protocol.fileio import unreadable


# Sources read from downloaded raw files: their relative paths are under HARNESS_RAW.
RAW_SOURCES = ("amazon", "amazon2023")


@dataclass
class DatasetSpec:
    name: str
    domain: str = "item"  # the word in the extractors' prompts ("The beauty item has ...")
    # P5-style folder | raw 2014 files | raw 2023 files
    source: str = field(default="sequences", metadata={"rule": ("sequences", *RAW_SOURCES)})
    path: str = ""  # sequences: folder with sequences.txt + items.tsv
    reviews: str = ""  # amazon: reviews_<Cat>.json.gz or the 5-core file; amazon2023: <Cat>.jsonl.gz
    ratings: str = ""  # amazon: ratings_<Cat>.csv (user,item,rating,time; no header)
    meta: str = ""  # amazon: meta_<Cat>.json.gz (Python-literal lines); amazon2023: meta_<Cat>.jsonl.gz
    image_features: str = ""  # amazon: image_features_<Cat>.b (optional)
    # llmemb (single pass, the paper's) | kcore (iterative) | none
    recipe: str = field(default="llmemb", metadata={"rule": RECIPES})
    # interactions a user and an item need in the recipe's filter
    min_count: int = field(default=5, metadata={"rule": at_least(1)})
    # users with fewer interactions after filtering are dropped (3: a training item, valid, test)
    min_user_len: int = field(default=3, metadata={"rule": at_least(3)})
    n_negatives: int = field(default=100, metadata={"rule": at_least(1)})
    negative_seed: int = field(default=2024, metadata={"rule": at_least(0)})  # numpy seeds are >= 0
    # an item is tail when it has fewer interactions than this
    tail_threshold: int = field(default=4, metadata={"rule": at_least(1)})
    # none | render (synthetic images for bundled mini data)
    images: str = field(default="none", metadata={"rule": ("none", "render")})
    # this data set's own extractor settings, {extractor: {setting: value}}, over the extractor's
    # profile block (the authors adapt Sports for 2,000 steps, the others for 4,000)
    extractors: dict = field(default_factory=dict, metadata={"rule": lambda v: _extractor_blocks(v)})
    # How the user asked for this data set, as `data prepare` arguments (set by dataset_spec and
    # folder_spec): what an error names to rebuild it. Not a setting.
    prepare_args: ClassVar[tuple[str, ...]] = ()

    def prepare_command(self, out: Path | None = None) -> str:
        """The exact command that prepares this data set again, replacing what is there."""
        words = ["python", "-m", "harness", "data", "prepare", *(self.prepare_args or ("--dataset", self.name))]
        words += ["--out", str(out)] if out else []
        return f"`{shlex.join([*words, '--force'])}`"

    def resolve(self, value: str) -> Path:
        """A path of this config: relative ones are under the raw folder (HARNESS_RAW, default
        raw/ in the checkout) for raw Amazon files, else under the repository root (bundled data)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (raw_dir() if self.source in RAW_SOURCES else REPO_ROOT) / path

    def recipe_settings(self) -> dict:
        """The settings that change the prepared content (the dataset directory's key)."""
        keys = ("source", "recipe", "min_count", "min_user_len", "n_negatives",
                "negative_seed", "tail_threshold", "images")
        return {k: getattr(self, k) for k in keys}


def is_sequences_folder(value: str) -> bool:
    try:
        return (Path(value).expanduser() / "sequences.txt").is_file()
    except OSError as err:  # a folder this process may not enter
        raise unreadable(value, err) from None


def _override_words(overrides: dict | None) -> list[str]:
    return [f"{k}={v}" for k, v in (overrides or {}).items()]


def _name_from(text: str) -> str:
    """A valid data set name close to `text` (accents dropped, other characters to '_')."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-") or "data"


def folder_spec(folder: str, name: str | None = None, overrides: dict | None = None) -> DatasetSpec:
    """A folder of sequences.txt + items.tsv with the 5-core sets' settings (already filtered:
    recipe none; DatasetSpec's tail threshold, negatives and seed), saying what it assumed."""
    path = Path(folder).expanduser().resolve()
    given_name, name = name, name or path.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        # `run` and `grid` have no --name: the fix that works from any command is to prepare the
        # folder under a valid name, then use the prepared directory.
        what = f"--name '{name}'" if given_name else f"the folder's name '{name}'"
        command = shlex.join(["python", "-m", "harness", "data", "prepare", "--dataset", str(path),
                              "--name", _name_from(name), *_override_words(overrides)])
        raise HarnessError(f"{what} cannot name a data set (letters, digits, '.', '_' or '-' only); prepare it "
                           f"as `{command}` and give the folder it prints to --dataset.")
    values = {"recipe": "none", **(overrides or {}), "source": "sequences", "path": str(path), "name": name}
    spec = build(DatasetSpec, values, f"data set folder {path}")
    spec.prepare_args = ("--dataset", str(path), *(("--name", name) if given_name else ()),
                         *_override_words(overrides))
    print(f"{path}: a sequences source named '{name}'; assumed recipe={spec.recipe}, "
          f"tail_threshold={spec.tail_threshold}, n_negatives={spec.n_negatives}, "
          f"negative_seed={spec.negative_seed}, domain={spec.domain} (change any with key=value).")
    return spec


def _extractor_blocks(value) -> str | None:
    """What `extractors:` of a data set config accepts: a mapping of configured extractor names
    (configs/extractors/) to mappings of their settings."""
    known = config_names("extractors")
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return "a mapping of extractor names to settings, e.g. {sda: {steps: 2000}}"
    unknown = [k for k in value if k not in known]
    return f"names of configured extractors ({', '.join(known)}), not '{unknown[0]}'" if unknown else None


def _plugin_paths(values: dict, where: Path) -> dict:
    """A plugin's config ships beside its data: its relative sequences `path` is relative to the
    YAML file's folder (the repository's own configs are relative to the checkout). Raw files
    (reviews, meta) are downloads, under HARNESS_RAW for every config (DatasetSpec.resolve)."""
    path = values.get("path")
    if where.parent == CONFIG_DIR / "datasets" or not isinstance(path, str) or not path:
        return values
    return {**values, "path": str(where.parent / Path(path).expanduser())}


def dataset_spec(name: str, profile: str | None = None, overrides: dict | None = None) -> DatasetSpec:
    """The spec of data set `name` under `profile` (a file's `profiles:` block picks the source),
    or of a folder holding sequences.txt + items.tsv (folder_spec)."""
    if is_sequences_folder(name):
        return folder_spec(name, None, overrides)
    if "/" in name:
        raise HarnessError(f"{name} is not a folder with sequences.txt and items.tsv, nor a prepared data set.")
    raw = load_group("datasets", name)
    where = config_path("datasets", name)
    shown = f"configs/datasets/{name}.yaml" if where.parent == CONFIG_DIR / "datasets" else str(where)
    profile = profile_name(profile)
    per_profile = raw.pop("profiles", {}) or {}
    if per_profile and profile not in per_profile:
        raise HarnessError(
            f"data set '{name}' has no source for profile '{profile}'; "
            f"use one of {sorted(per_profile)} or add it to {shown}."
        )
    values = _plugin_paths({**raw, **per_profile.get(profile, {})}, where)
    values = {**values, **(overrides or {}), "name": name}
    spec = build(DatasetSpec, values, shown)
    spec.prepare_args = ("--dataset", name, "--profile", profile, *_override_words(overrides))
    return spec
