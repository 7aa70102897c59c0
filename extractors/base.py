"""The extractor interface: settings in, a FeatureSet for a prepared data set out.

Like a scikit-learn estimator, the constructor only stores settings, so an extractor is rebuilt
from the flat dict in a feature set's meta.json. Everything that changes the output (model id
and revision, prompts, pooling, dims, image handling) must be in `settings()`: the feature
cache key is derived from it and the data set's content hash.
"""
from __future__ import annotations

import abc
from typing import ClassVar

from protocol.config import NON_NEGATIVE, SIZE, device_rule
from protocol.featureset import FeatureSet


def check_extractor_settings(name: str, profile: str | None, overrides: dict) -> None:
    """Refuse bad settings of extractor `name` before any work (a data set prepared, a model run):
    its config < profile block < `overrides`, checked as the extractor will be configured (the
    data set later fills only its prompt domain and feature file, strings left empty here)."""
    from extractors.registry import EXTRACTORS
    from extractors.store import extractor_settings

    EXTRACTORS.get(name)(**extractor_settings(name, profile, overrides))


class Extractor(abc.ABC):
    name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    # What settings accept beyond their default's type (protocol.config.check_settings); only
    # the keys an extractor has are checked. Here: the running settings every extractor shares
    # (extractors.shards.RUN_DEFAULTS, base's batch_size and cpu_threads); each extractor adds
    # the ranges of its own defaults beside them.
    rules: ClassVar[dict] = {"dtype": ("auto", "bf16", "fp16", "fp32"), "device": device_rule, "batch_size": SIZE,
                             "shard_items": SIZE, "cpu_threads": NON_NEGATIVE}  # 0: torch's default
    relations: ClassVar[tuple] = ()  # rules across settings (protocol.config.Relation)

    def __init__(self, **settings):
        from protocol.config import build_settings

        self._settings = build_settings(f"extractor {self.name}", self.defaults, settings, self.rules,
                                        self.relations)

    def settings(self) -> dict:
        return dict(self._settings)

    @abc.abstractmethod
    def extract(self, dataset, progress: bool = True) -> FeatureSet:
        """Features for every item of `dataset`, in its row order (not yet saved)."""

    def run_shards(self, dataset, encoders: dict, ranks, progress: bool):
        """Run each modality's encoder over the item shards in `self.work_dir` (resumable).

        Returns (raw arrays by modality, merged image report) on the process that merges the
        shards, None on the others. For extractors with a `shard_items` setting.
        """
        from extractors.images import ImageReport
        from extractors.shards import extract_sharded

        merged = extract_sharded(self.work_dir, dataset.n_items, self._settings["shard_items"], encoders,
                                 ranks, self.name, progress)
        if merged is None:
            return None
        raw, notes = merged
        report = ImageReport.merged(notes["image"])
        report.warn(dataset.n_items, progress)
        return raw, report
