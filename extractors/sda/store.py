"""Trained adapters on disk, found by content: base model, data set hash and training settings.

An adapter lives in artifacts/adapters/<data set>/<adapter>-<key>/ (peft's files plus sda.json
with τ and the loss history); sda.json is written last, so a folder without it was never
finished. The key leaves out settings that only matter after training (PCA width, extraction
batch size, ...) or only change speed, so `sda` features of any PCA width, `adapt` and
`analyze gradients` all share one adapter; MoDA-only settings are left out for plain LoRA, so
`adapt --adapter lora` and the `sda-lora` extractor share one too. The key holds the process
count (`adapt_processes`) and the items per process, since CMSA contrasts within each process,
and the dtype resolved (`auto` is float32 on CPU, bfloat16 on GPU).
"""
from __future__ import annotations

from pathlib import Path

from extractors.qwenvl import QwenVLExtractor
from extractors.sda import train
from extractors.shards import dtype_name
from protocol.config import artifacts_dir
from protocol.errors import HarnessError
from protocol.fileio import read_json, stable_key

CODE_VERSION = 1
MODA_ONLY = ("experts", "gate_dim")


def adapter_settings(settings: dict) -> dict:
    """The settings that shape the trained adapter, with what they imply spelled out: the dtype
    `auto` resolves to here, and the items each process contrasts per step."""
    if settings["adapt_processes"] < 1:
        raise HarnessError(f"adapt_processes={settings['adapt_processes']} must be at least 1.")
    skip = set(QwenVLExtractor.run_settings) | set(QwenVLExtractor.post_settings) | set(train.RUN_SETTINGS)
    if settings["adapter"] == "lora":
        skip |= set(MODA_ONLY)
    return {k: v for k, v in settings.items() if k not in skip} | {
        "dtype": dtype_name(settings),
        "batch_per_process": settings["batch_items"] // settings["adapt_processes"]}


def adapter_key(dataset, settings: dict) -> str:
    return stable_key({"settings": adapter_settings(settings), "dataset": dataset.content_hash,
                       "code_version": CODE_VERSION})


def adapter_dir(dataset, settings: dict) -> Path:
    return artifacts_dir() / "adapters" / dataset.name / f"{settings['adapter']}-{adapter_key(dataset, settings)}"


def adapter_meta(path: Path) -> dict:
    return read_json(Path(path) / "sda.json")


def ensure_adapter(dataset, settings: dict, progress: bool = True) -> Path:
    """The adapter for `settings` on `dataset`, trained first (or resumed) when not yet finished."""
    from protocol.threads import torch_threads

    path = adapter_dir(dataset, settings)
    if not (path / "sda.json").exists():
        with torch_threads(settings["cpu_threads"]):
            train.train_adapter(dataset, settings, path, progress,
                                meta={"key": adapter_key(dataset, settings),
                                      "adapter_settings": adapter_settings(settings)})
    return path
