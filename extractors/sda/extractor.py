"""The SDA extractors: adapt Qwen2.5-VL on the data set's items, then extract as `qwenvl` does.

`sda` is MoDA + CMSA; `sda-lora` ("w/o MoDA") and `sda-infonce` ("w/o soft target") are the
Table 3 ablations. "w/o CMSA" is the zero-shot `qwenvl` extractor and "w/o both" the Base
row, as in the authors' code. Prompts, batching, pooling, shards and PCA are qwenvl's; only the
model differs, so the features differ from qwenvl's by the adapter alone.
"""
from __future__ import annotations

from pathlib import Path

from extractors.qwenvl import QwenVLExtractor
from extractors.sda import train
from extractors.sda.model import load_adapter
from extractors.sda.store import adapter_key, adapter_meta, ensure_adapter
from protocol.errors import HarnessError


class SDAExtractor(QwenVLExtractor):
    name = "sda"
    code_version = 1
    defaults = QwenVLExtractor.defaults | train.DEFAULTS
    run_settings = QwenVLExtractor.run_settings + train.RUN_SETTINGS
    rules = QwenVLExtractor.rules | train.RULES
    relations = QwenVLExtractor.relations + train.RELATIONS
    adapter_dir: Path | None = None  # set by extract once the adapter exists

    def extract(self, dataset, progress: bool = True):
        self.adapter_dir = ensure_adapter(dataset, self._settings, progress)
        features = super().extract(dataset, progress)
        if features is not None:  # rank 0
            trained = adapter_meta(self.adapter_dir)
            features.meta |= {
                "adapter_key": adapter_key(dataset, self._settings), "adapter_dir": str(self.adapter_dir),
                "adapter": {"tau": trained["tau"], "steps": trained["steps"],
                            "final_loss": trained["history"][-1]["loss"], "parameters": trained["parameters"]}}
        return features

    def load(self, device, dtype):
        if self.adapter_dir is None:
            raise HarnessError(f"extractor '{self.name}' has no trained adapter yet; call extract(), "
                               "which trains or finds it.")
        model, processor = super().load(device, dtype)
        return load_adapter(model, self.adapter_dir), processor


class SDALoRAExtractor(SDAExtractor):
    """w/o MoDA: one plain LoRA of the same rank, trained with CMSA."""

    name = "sda-lora"
    defaults = SDAExtractor.defaults | {"adapter": "lora"}


class SDAInfoNCEExtractor(SDAExtractor):
    """w/o soft target: MoDA trained with InfoNCE on L2-normalised features."""

    name = "sda-infonce"
    defaults = SDAExtractor.defaults | {"loss": "infonce"}
