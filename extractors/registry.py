"""Extractors by name; a module (and its heavy libraries) is imported only when chosen."""
from harness.registry import Registry

EXTRACTORS = Registry("extractor", {
    "base": "extractors.base_features:BaseExtractor",
    "clip": "extractors.clip:CLIPExtractor",
    "qwenvl": "extractors.qwenvl:QwenVLExtractor",
    "sda": "extractors.sda.extractor:SDAExtractor",
    "sda-lora": "extractors.sda.extractor:SDALoRAExtractor",
    "sda-infonce": "extractors.sda.extractor:SDAInfoNCEExtractor",
})
