"""The extractor interface: settings in, a FeatureSet for a prepared data set out.

Like a scikit-learn estimator, the constructor only stores settings, so an extractor is rebuilt
from the flat dict in a feature set's meta.json. Everything that changes the output (model id
and revision, prompts, pooling, dims, image handling) must be in `settings()`: the feature
cache key is derived from it and the data set's content hash.
"""
from __future__ import annotations

import abc
from typing import ClassVar

from extractors.featureset import FeatureSet


class Extractor(abc.ABC):
    name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    # What settings accept beyond their default's type (harness.config.check_settings); only
    # the keys an extractor has are checked.
    rules: ClassVar[dict] = {"dtype": ("auto", "bf16", "fp16", "fp32")}

    def __init__(self, **settings):
        from harness.config import build_settings, device_rule

        self._settings = build_settings(f"extractor {self.name}", self.defaults, settings,
                                        {"device": device_rule, **self.rules})

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
