"""Extractors by name; a module (and its heavy libraries) is imported only when chosen.

An extractor of one's own is named `pkg.module:Class` or `path/file.py:Class`, or registered by an
installed package under the entry point group `sda_harness.extractors` (protocol/registry.py).
"""
from protocol.registry import Registry

EXTRACTORS = Registry("extractor", {
    "base": "extractors.base_features:BaseExtractor",
    "clip": "extractors.clip:CLIPExtractor",
    "qwenvl": "extractors.qwenvl:QwenVLExtractor",
    "sda": "extractors.sda.extractor:SDAExtractor",
    "sda-lora": "extractors.sda.extractor:SDALoRAExtractor",
    "sda-infonce": "extractors.sda.extractor:SDAInfoNCEExtractor",
}, group="sda_harness.extractors", base="extractors.base:Extractor")
