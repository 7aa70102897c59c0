"""Feature sets on disk: settings resolved from configs, cached by content, extracted on a miss.

Settings = configs/extractors/<name>.yaml < its `profiles: <profile>` block < overrides; empty
`domain` / `image_features` settings are filled from the data set's own config, so they count
in the key. Cache key = stable_key(extractor, settings, data set content hash, code version),
with `dtype: auto` keyed as what it resolves to on this machine (float32 on CPU, bfloat16 on GPU);
the set lives in artifacts/features/<data set>/<extractor>/<key>/ and is found by that key and
checked against the data set, never trusted by name. Settings that only change speed or
placement (an extractor's `run_settings`) stay out of the key.
"""
from __future__ import annotations

import time
from pathlib import Path

from extractors.prompts import items_without_text
from extractors.registry import EXTRACTORS
from extractors.shards import dtype_name
from protocol.config import artifacts_dir, config_names, load_group, profile_name
from protocol.errors import HarnessError
from protocol.featureset import FeatureSet
from protocol.fileio import stable_key


def extractor_settings(name: str, profile: str | None = None, overrides: dict | None = None,
                       dataset: str | None = None) -> dict:
    """configs/extractors/<name>.yaml with its profile block (a plugin, which has no YAML: its
    class's defaults), then the block for `name` that data set `dataset`'s config holds
    (`extractors:`, e.g. Sports' SDA steps), then `overrides`."""
    if name in config_names("extractors"):
        raw = dict(load_group("extractors", name))
    else:  # a plugin (an unknown name is refused here, with "did you mean")
        raw = dict(EXTRACTORS.get(name).defaults)
    per_profile = raw.pop("profiles", {}) or {}
    profile = profile_name(profile)
    if per_profile and profile not in per_profile:
        raise HarnessError(f"extractor '{name}' has no settings for profile '{profile}'; use one of "
                           f"{sorted(per_profile)} or add it to configs/extractors/{name}.yaml.")
    return {**raw, **(per_profile.get(profile) or {}), **_dataset_block(name, dataset, profile), **(overrides or {})}


def _dataset_block(name: str, dataset: str | None, profile: str) -> dict:
    """Data set `dataset`'s own settings of extractor `name` (a configured data set only)."""
    if not dataset or dataset not in config_names("datasets"):
        return {}
    from protocol.data.spec import dataset_spec

    return dict(dataset_spec(dataset, profile).extractors.get(name) or {})


def _dataset_values(dataset, profile: str) -> dict:
    """The settings a data set's config supplies: its prompt domain word and CNN feature file."""
    values = {"domain": dataset.meta.get("domain", "item")}
    try:
        from protocol.data.spec import dataset_spec

        spec = dataset_spec(dataset.name, profile)
    except HarnessError:  # a data set prepared from a directory without a config
        return values | {"image_features": ""}
    return values | {"image_features": str(spec.resolve(spec.image_features)) if spec.image_features else ""}


def make_extractor(name: str, dataset, profile: str | None = None, overrides: dict | None = None):
    """The configured extractor `name` for `dataset` (nothing heavy is loaded yet)."""
    cls = EXTRACTORS.get(name)
    values = extractor_settings(name, profile, overrides, dataset.name)
    from_dataset = _dataset_values(dataset, profile_name(profile))
    for key, value in from_dataset.items():
        if key in cls.defaults and not values.get(key, cls.defaults[key]):
            values[key] = value
    return cls(**values)


def _key(extractor, dataset, leave_out: tuple = ()) -> str:
    skip = set(getattr(extractor, "run_settings", ())) | set(leave_out)
    settings = {k: v for k, v in extractor.settings().items() if k not in skip}
    if "dtype" in settings:
        settings["dtype"] = dtype_name(extractor.settings())  # `auto` keyed as what it resolves to
    if settings.get("image_features"):  # the release's file, wherever a machine keeps it (HARNESS_RAW)
        settings["image_features"] = Path(settings["image_features"]).name
    identity = {"extractor": extractor.name, "settings": settings,
                "dataset": dataset.content_hash, "images": dataset.images_fingerprint(),
                "code_version": getattr(extractor, "code_version", 1)}
    plugin = EXTRACTORS.identity_of(type(extractor))
    if plugin is not None:  # absent for the project's extractors, so their keys stay as they were
        identity["plugin"] = plugin
    return stable_key(identity)


def cache_key(extractor, dataset) -> str:
    return _key(extractor, dataset)


def features_root(dataset, name: str) -> Path:
    return artifacts_dir() / "features" / dataset.name / name


def folder_name(extractor) -> str:
    """The folder of an extractor's sets: its `name` (a plugin may leave it empty: its class name)."""
    return extractor.name or type(extractor).__name__


def feature_dir(extractor, dataset) -> Path:
    return features_root(dataset, folder_name(extractor)) / cache_key(extractor, dataset)


def raw_dir(extractor, dataset) -> Path:
    """Where the raw (pre-PCA) shards live: shared by settings that differ only after them."""
    key = _key(extractor, dataset, tuple(getattr(extractor, "post_settings", ())))
    return features_root(dataset, folder_name(extractor)) / f"raw-{key}"


def find_cached(extractor, dataset) -> FeatureSet | None:
    path = feature_dir(extractor, dataset)
    if not (path / "meta.json").exists():
        return None
    features = FeatureSet.load(path, dataset)
    if features.key != cache_key(extractor, dataset):
        raise HarnessError(f"{path} holds a feature set with key {features.key}, not the folder's "
                           "name; delete the folder and extract again.")
    return features


def load_or_extract(dataset, name: str, profile: str | None = None, overrides: dict | None = None,
                    progress: bool = True, force: bool = False) -> FeatureSet:
    """The feature set of extractor `name` for `dataset`, extracted and saved on a cache miss.

    `force`: extract again from the start (the cached set and its raw shards are discarded;
    an SDA adapter is kept: it has its own key). Under torchrun every rank calls this; ranks
    share the extraction and rank 0 saves.
    """
    import shutil

    from extractors.shards import barrier, process_ranks
    from protocol.threads import torch_threads

    extractor = make_extractor(name, dataset, profile, overrides)
    ranks = process_ranks()
    if force:
        if ranks.is_main:
            shutil.rmtree(raw_dir(extractor, dataset), ignore_errors=True)
        barrier(ranks)
    else:
        cached = find_cached(extractor, dataset)
        if cached is not None:
            return cached
    extractor.work_dir = raw_dir(extractor, dataset)
    began = time.perf_counter()
    with torch_threads(extractor.settings().get("cpu_threads", 0)):
        features = extractor.extract(dataset, progress=progress)
    seconds = time.perf_counter() - began
    path = feature_dir(extractor, dataset)
    plugin = EXTRACTORS.identity_of(type(extractor))
    if ranks.is_main:
        if plugin is not None:  # the contract's words before FeatureSet.check's; nothing is saved
            check_plugin_features(name, features, dataset)
            features.meta["plugin"] = plugin
        features.meta |= {"extractor": name, "key": cache_key(extractor, dataset),
                          "settings": extractor.settings(), "dataset": dataset.name,
                          "dataset_hash": dataset.content_hash, "seconds": round(seconds, 3),
                          "items_per_second": round(dataset.n_items / max(seconds, 1e-9), 2),
                          "items_without_text": items_without_text(dataset.items)}
        features.check(dataset)  # refuse NaN or a wrong row count before anything is saved
        features.save(path)
    barrier(ranks)
    return features if ranks.is_main else FeatureSet.load(path, dataset)


def check_plugin_features(name: str, features, dataset) -> None:
    """The contract of a plugin extractor's output (harness/contract.py holds the recommenders'):
    a FeatureSet of one finite float row per item in data set order, of the dims its meta says.
    Checked on every extraction, before anything is saved (it costs nothing beside extracting)."""
    import numpy as np

    def fail(problem: str, fix: str) -> HarnessError:
        return HarnessError(f"extractor plugin '{name}': {problem}; {fix}.")

    if not isinstance(features, FeatureSet):
        raise fail(f"extract returned {type(features).__name__}, not a FeatureSet",
                   "return protocol.featureset.FeatureSet(image, text, meta)")
    order = features.meta.get("items")  # optional: the items of its rows, as the data set's asin
    if order is not None and list(order) != dataset.items["asin"].tolist():
        raise fail("its rows are not the data set's items in order (meta 'items')",
                   "write one row per item in dataset.items order")
    for modality, arr in (("image", features.image), ("text", features.text)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[0] != dataset.n_items:
            raise fail(f"{modality} features have shape {getattr(arr, 'shape', None)}, not ({dataset.n_items}, dim)",
                       "write one row per item of the data set, in its order (dataset.items)")
        declared = features.meta.get(f"{modality}_dim")
        if declared is not None and declared != arr.shape[1]:
            raise fail(f"{modality} features have {arr.shape[1]} dims but its meta says {modality}_dim={declared}",
                       f"make meta['{modality}_dim'] the arrays' width")
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
            raise fail(f"{modality} features are not all finite floats", "write float32 values without NaN or inf")
