"""CLIP ViT-L/14 features: the projected image and text embeddings (768-d each for ViT-L/14).

Text is the item's plain text (title. brand. categories. description), cut to CLIP's 77 tokens.
Images go through the PIL CLIP image processor (no torchvision needed). Extraction is sharded
and resumable like qwenvl's, and splits across torchrun processes the same way.
"""
from __future__ import annotations

import numpy as np
import torch

from extractors import prompts
from extractors.base import Extractor
from extractors.images import ImageReport, load_images
from protocol.featureset import FeatureSet
from extractors.shards import (RUN_DEFAULTS, RUN_SETTINGS, length_sorted_batches, process_ranks, resolve_device,
                               resolve_dtype)
from extractors.weights import resolve_weights

CLIP_MAX_TOKENS = 77


def load_clip(folder: str, device, dtype):
    """(CLIPModel in eval mode, tokenizer, PIL image processor) from a model folder."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(folder, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(folder), CLIPImageProcessorPil.from_pretrained(folder)


def clip_encoder(model, tokenizer, images_processor, texts: list[str], dataset, modality: str,
                 batch_size: int, device, dtype, bar=None):
    """`encode(indices) -> (rows, notes)` for run_shards, for one modality."""

    @torch.no_grad()
    def encode(indices: np.ndarray) -> tuple[np.ndarray, dict]:
        report = ImageReport()
        if modality == "text":
            tokens = tokenizer([texts[i] for i in indices], truncation=True, max_length=CLIP_MAX_TOKENS)
            lengths = [len(ids) for ids in tokens["input_ids"]]
        else:
            lengths = np.zeros(len(indices))  # every image is resized to the same size
        rows = np.zeros((len(indices), model.config.projection_dim), dtype=np.float32)
        for batch in length_sorted_batches(lengths, batch_size):
            items = indices[batch]
            if modality == "text":
                inputs = tokenizer([texts[i] for i in items], truncation=True, max_length=CLIP_MAX_TOKENS,
                                   padding=True, return_tensors="pt").to(device)
                out = model.get_text_features(**inputs)
            else:
                images, got = load_images(dataset, items)
                report.add(got)
                pixels = images_processor(images, return_tensors="pt")["pixel_values"].to(device, dtype)
                out = model.get_image_features(pixel_values=pixels)
            rows[batch] = out.pooler_output.float().cpu().numpy()
            if bar is not None:
                bar.update(len(items))
        return rows, (report.counts() if modality == "image" else {})

    return encode


class CLIPExtractor(Extractor):
    name = "clip"
    code_version = 1
    defaults = {
        "model": "openai/clip-vit-large-patch14",
        "revision": "",
        "batch_size": 64,
        **RUN_DEFAULTS,
    }
    run_settings = RUN_SETTINGS
    work_dir = None  # set by extractors.store: where shards live and resume

    def extract(self, dataset, progress: bool = True) -> FeatureSet | None:
        s = self._settings
        prompts.require_item_text(dataset)
        ranks = process_ranks()
        device = resolve_device(s["device"], ranks)
        dtype = resolve_dtype(s["dtype"], device)
        folder = resolve_weights(s["model"], s["revision"], self.name)
        model, tokenizer, images_processor = load_clip(folder, device, dtype)
        texts = [prompts.plain_text(row) for row in dataset.items.to_dict("records")]
        encoders = {m: (lambda bar, m=m: clip_encoder(model, tokenizer, images_processor, texts, dataset, m,
                                                      s["batch_size"], device, dtype, bar))
                    for m in ("image", "text")}
        done = self.run_shards(dataset, encoders, ranks, progress)
        if done is None:
            return None
        raw, report = done
        meta = {"model_folder": folder, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
                "processes": ranks.world, "text": {"fields": list(prompts.PLAIN_TEXT_FIELDS),
                                                   "max_tokens": CLIP_MAX_TOKENS, "example": texts[0]},
                "embeddings": "projected (get_image_features / get_text_features pooler_output)",
                "images": report.as_meta()}
        return FeatureSet(raw["image"], raw["text"], meta)
