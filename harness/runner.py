"""run: one recommender on one data set with one feature set -> results/runs/<key>/."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import pandas as pd

from protocol.config import artifacts_dir, build, config_names, load_group, load_profile, split_overrides
from protocol.data.prepare import load_dataset
from protocol.errors import HarnessError
from protocol.fileio import stable_key
from protocol.provenance import git_commit, machine, versions
from protocol.store import ResultStore


@dataclass
class RunSpec:
    """Everything that identifies one run; rebuilt from a flat dict (a grid or CSV row)."""

    model: str
    dataset: str = "beauty"
    extractor: str = "base"
    profile: str = "mini"
    params: dict = field(default_factory=dict)  # model hyper-parameters, resolved
    train: dict = field(default_factory=dict)  # TrainConfig fields, resolved
    extractor_settings: dict = field(default_factory=dict)  # "extractor.x" overrides

    @classmethod
    def resolve(cls, model: str, dataset: str, extractor: str = "base", profile: str | None = None,
                overrides: dict | None = None) -> "RunSpec":
        """Model YAML defaults < profile < overrides ("train.x" for the trainer, "extractor.x" for
        the extractor's settings, "x" or "model.x" for the model)."""
        from protocol.featureset import check_modalities
        from recommenders import MODELS
        from recommenders.trainer import TrainConfig

        model_cls = MODELS.get(model)
        prof = load_profile(profile)
        model_cfg = model_config(model)
        groups = split_overrides(overrides or {}, ("train", "model", "extractor"))
        _refuse_misplaced(model_cls, {**groups["model"], **groups[""]}, groups["train"])
        params = {**model_cfg.get("defaults", {}), **prof.get("models", {}).get(model, {}),
                  **groups["model"], **groups[""]}
        params = model_cls.resolve_params(params)
        train = {**model_cfg.get("train", {}), **prof.get("train", {}), **groups["train"]}
        train = dataclasses.asdict(build(TrainConfig, train, "the trainer (train.*)"))
        if model_cfg.get("train", {}).get("max_epochs") == 0:
            train["max_epochs"] = 0  # nothing to train, whatever the profile says
        check_modalities(groups["extractor"].get("modalities", "both"))  # before anything runs
        settings = extraction_settings(groups["extractor"])
        if settings:  # e.g. extractor.experts=0: refused now, not once the data set is prepared
            from extractors.base import check_extractor_settings

            check_extractor_settings(extractor, profile, settings)
        return cls(model, dataset, extractor, prof["name"], params, train, groups["extractor"])

    @property
    def modalities(self) -> str:
        """Which modalities of the feature set the model sees (a view; extraction is unchanged)."""
        return str(self.extractor_settings.get("modalities", "both"))

    def key_train(self) -> dict:
        """The trainer settings that change results (not progress bars, device, threads or eval batch size)."""
        return {k: v for k, v in self.train.items()
                if k not in ("progress", "device", "eval_batch_size", "threads")}

    def key(self, data_hash: str, feature_key: str) -> str:
        identity = {"model": self.model, "params": self.params, "extractor": self.extractor,
                    "features": feature_key, "data": data_hash, "train": self.key_train()}
        if self.modalities != "both":  # absent otherwise, so keys of earlier runs stay valid
            identity["modalities"] = self.modalities
        plugin = self.plugin_identity()
        if plugin is not None:  # a plugin's package, version and source: an edit gets a new key
            identity["model_plugin"] = plugin
        return stable_key(identity)

    def plugin_identity(self) -> dict | None:
        """The model's plugin identity (protocol/registry.py); None for the project's own models."""
        from recommenders import MODELS

        return MODELS.identity(self.model)


def _refuse_misplaced(model_cls, model_values: dict, train_values: dict) -> None:
    """A model setting written as train.x, or a trainer setting without it, gets the right spelling."""
    from recommenders.trainer import TrainConfig

    trainer = {f.name for f in dataclasses.fields(TrainConfig)}
    model = set(model_cls.resolve_params({}))
    for key, value in train_values.items():
        if key not in trainer and key in model:
            raise HarnessError(f"{key} is a setting of model '{model_cls.name}', not of the trainer; "
                               f"write {key}={value} without 'train.'.")
    for key, value in model_values.items():
        if key not in model and key in trainer:
            raise HarnessError(f"{key} is a trainer setting, not one of model '{model_cls.name}'; "
                               f"write train.{key}={value}.")


def model_config(model: str) -> dict:
    """A model's `defaults`, `train` and `grid`: configs/models/<model>.yaml, or for a model of
    another source (`mmrec:FREEDOM`, a plugin) what its class derives (Recommender.source_config)."""
    if model in config_names("models"):
        return load_group("models", model)
    from recommenders import MODELS

    return MODELS.get(model).source_config()


def extraction_settings(extractor_values: dict) -> dict:
    """The extractor's own settings among the `extractor.*` values: all but `modalities`, a view
    of the feature set that the model takes (the extraction is the same)."""
    return {k: v for k, v in extractor_values.items() if k != "modalities"}


def table_extraction_settings(overrides) -> dict:
    """extraction_settings of a table job's key=value overrides (`extractor.x` -> x)."""
    return extraction_settings(split_overrides(dict(overrides), ("extractor",))["extractor"])


def load_features_for(spec: RunSpec, dataset, model_cls):
    """The feature set the model needs, extracted on first use; None for ID-only models."""
    if not model_cls.wants_features(spec.extractor):
        return None
    from extractors.store import load_or_extract

    return load_or_extract(dataset, spec.extractor, spec.profile, extraction_settings(spec.extractor_settings))


def feature_key_of(features) -> str:
    """What a run key records of its features: the feature set's cache key, or "id" without one."""
    return features.key if features is not None else "id"


def execute(spec: RunSpec, store: ResultStore | None = None, dataset=None, features=None,
            force: bool = False) -> dict:
    """Train and evaluate one run with its `train.threads` torch threads; returns its summary
    (skips the work when already finished)."""
    from protocol.threads import torch_threads

    with torch_threads(spec.train.get("threads", 0)):
        return _execute(spec, store, dataset, features, force)


def _execute(spec: RunSpec, store: ResultStore | None, dataset, features, force: bool) -> dict:
    from recommenders import MODELS
    from recommenders.trainer import TrainConfig, Trainer, peak_memory_mb, seed_everything

    store = store or ResultStore()
    model_cls = MODELS.get(spec.model)
    dataset = dataset or load_dataset(spec.dataset, spec.profile)
    if features is None:
        features = load_features_for(spec, dataset, model_cls)
    feature_key = feature_key_of(features)
    run_key = spec.key(dataset.content_hash, feature_key)
    if store.is_finished(run_key) and not force:
        return summarize(store, run_key) | {"skipped": True}
    store.check_writable()  # before training, not after it
    plugin = spec.plugin_identity()
    if plugin is not None:  # before any training (and before the seeds: the run is as without it)
        from harness.contract import check_recommender

        check_recommender(spec.model, model_cls, plugin, dataset,
                          features.view(spec.modalities) if features is not None else None, spec.params)

    config = TrainConfig(**spec.train)
    seed_everything(config.seed)
    if features is not None:
        features = features.view(spec.modalities)
    model = model_cls(dataset, features, **spec.params)
    checkpoint = artifacts_dir() / "checkpoints" / f"{run_key}.pt"
    if force:  # from the start: a damaged checkpoint never blocks the run that replaces it
        checkpoint.unlink(missing_ok=True)
    began = time.perf_counter()
    trainer = Trainer(model, dataset, config, checkpoint=checkpoint)
    result = trainer.fit()
    trained = time.perf_counter()
    evaluations = trainer.evaluate_all()
    finished = time.perf_counter()
    prof = load_profile(spec.profile)
    identity = {"run_key": run_key, "model": spec.model, "extractor": spec.extractor,
                "dataset": spec.dataset, "profile": spec.profile, "data_hash": dataset.content_hash,
                "feature_key": feature_key,
                "adapter_key": features.meta.get("adapter_key", "") if features is not None else "",
                "seed": config.seed,
                "params": stable_json(spec.params), "best_epoch": result.best_epoch,
                "epochs": result.epochs_run, "seconds_per_epoch": round(result.seconds_per_epoch, 4),
                # a resumed run counts its earlier processes too (up to their last checkpoint)
                "wall_seconds": round(result.earlier_seconds + finished - began, 3),
                "resumes": result.resumes}
    identity |= plugin_columns(plugin, features)
    manifest = {"identity": identity, "spec": dataclasses.asdict(spec), "note": prof.get("note", ""),
                "git_commit": git_commit(), "versions": versions(), "machine": machine(),
                "device": str(trainer.device), "dataset_path": str(dataset.path),
                "feature_path": str(features.path) if features is not None else None,
                "timings": {"train_seconds": result.earlier_seconds + trained - began,
                            "eval_seconds": finished - trained,
                            "seconds_per_epoch": result.seconds_per_epoch},
                "peak_memory_mb": peak_memory_mb(trainer.device), "history": result.history}
    store.write_run(run_key, identity, evaluations, manifest)
    checkpoint.unlink(missing_ok=True)
    return summarize(store, run_key) | {"skipped": False}


def plugin_columns(model_plugin: dict | None, features) -> dict:
    """The identity of a plugin model or extractor, for the manifest and the metrics rows (only
    present for plugins, so native runs' rows keep their columns)."""
    columns = {"model_plugin": stable_json(model_plugin)} if model_plugin is not None else {}
    extractor_plugin = features.meta.get("plugin") if features is not None else None
    if extractor_plugin:
        columns["extractor_plugin"] = stable_json(extractor_plugin)
    return columns


def stable_json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def summarize(store: ResultStore, run_key: str) -> dict:
    return {"run_key": run_key, "dir": store.run_dir(run_key), "metrics": store.metrics(run_key),
            "manifest": store.manifest(run_key)}


def headline(metrics: pd.DataFrame, protocol: str = "sampled") -> pd.DataFrame:
    """Overall and tail HR@10 / NDCG@10 for validation and test, with group sizes (NaN, n=0 when empty)."""
    part = metrics[(metrics["protocol"] == protocol) & (metrics["k"] == 10)]
    table = part.pivot(index=["split", "group"], columns="metric", values="value")
    table["n"] = part.groupby(["split", "group"])["n"].first()
    order = [(s, g) for s in ("valid", "test") for g in ("overall", "tail") if (s, g) in table.index]
    table = table.loc[order].rename(columns={"hit": "HR@10", "ndcg": "NDCG@10"})
    table.columns.name = None
    return table[["HR@10", "NDCG@10", "n"]]


def check_known(model: str, extractor: str) -> None:
    from recommenders import MODELS

    MODELS.check(model)
    try:
        from extractors.registry import EXTRACTORS
    except ImportError:
        if extractor != "base":
            raise HarnessError(f"unknown extractor '{extractor}'; only 'base' is available.") from None
        return
    EXTRACTORS.check(extractor)
