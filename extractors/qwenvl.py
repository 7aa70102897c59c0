"""Zero-shot Qwen2.5-VL features: the paper's prompts, mean of the last hidden state, PCA per modality.

The functions here are the pieces the SDA extractor reuses with its adapted model: loading the
processor and model, building chat prompts, length-sorted batches with left padding, a pooled
forward pass (bf16 on GPU, fp32 on CPU) and sharded, resumable, multi-process extraction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from extractors import prompts
from extractors.base import Extractor
from extractors.images import NOISE_SIZE, ImageReport, load_images, local_image_path
from extractors.pooling import check_pca_dim, masked_mean, pca_reduce
from protocol.featureset import FeatureSet
from extractors.shards import (RUN_DEFAULTS, RUN_SETTINGS, length_sorted_batches,
                               process_ranks, resolve_device, resolve_dtype)
from extractors.weights import resolve_weights
from protocol.config import SIZE
from protocol.errors import HarnessError

MODALITIES = ("image", "text")


def _chat_template(folder: Path, tokenizer) -> str:
    """The model folder's chat template (chat_template.jinja/.json) or the tokenizer's."""
    import json

    if (folder / "chat_template.jinja").exists():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").exists():
        return json.loads((folder / "chat_template.json").read_text())["chat_template"]
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise HarnessError(f"{folder} has no chat template (chat_template.jinja or .json); copy the "
                       "complete model folder of Qwen2.5-VL-Instruct there.")


def load_processor(folder: str, min_pixels: int, max_pixels: int):
    """Qwen's processor built from its tokenizer and the PIL image processor, image-only.

    The stock Qwen2_5_VLProcessor also wants a video processor, which needs torchvision;
    extraction uses images only, so a subclass without the video part is assembled here.
    """
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageTextProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    images = Qwen2VLImageProcessorPil.from_pretrained(folder, min_pixels=min_pixels, max_pixels=max_pixels)
    return ImageTextProcessor(images, tokenizer, chat_template=_chat_template(Path(folder), tokenizer))


def load_model(folder: str, device: torch.device, dtype: torch.dtype):
    """The Qwen2.5-VL backbone (vision tower + language model, no LM head) in eval mode."""
    from transformers import Qwen2_5_VLModel
    from transformers.utils import logging

    # The checkpoint's LM head is not part of the backbone; silence the "unexpected key" report.
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        model = Qwen2_5_VLModel.from_pretrained(folder, dtype=dtype)
    finally:
        logging.set_verbosity(verbosity)
    return model.to(device).eval()


def chat_text(processor, messages: list[dict]) -> str:
    """One user turn through the chat template, with the generation prompt."""
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def item_chats(processor, dataset, settings: dict) -> tuple[list[str], str]:
    """Every item's text chat and the (shared) image chat of `dataset`.

    `settings` holds domain, text_prefix and image_prompt (the extractor's settings).
    """
    prompts.require_item_text(dataset)
    domain = settings["domain"]
    texts = [chat_text(processor, prompts.text_messages(prompts.text_prompt(m, domain, settings["text_prefix"])))
             for m in dataset.items["meta"]]
    image = chat_text(processor, prompts.image_messages(prompts.image_prompt(domain, settings["image_prompt"])))
    return texts, image


def text_lengths(processor, texts: list[str]) -> np.ndarray:
    return np.array([len(ids) for ids in processor.tokenizer(texts)["input_ids"]])


def image_lengths(processor, dataset, indices) -> np.ndarray:
    """Image token count of each item from its image size (read from the file header only)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = processor.image_processor
    factor = ip.patch_size * ip.merge_size
    files = dataset.image_files
    sizes = [_image_size(local_image_path(files[i], dataset.path)) for i in indices]
    return np.array([np.prod(smart_resize(h, w, factor, ip.size["shortest_edge"], ip.size["longest_edge"]))
                     for h, w in sizes])


def _image_size(path: Path | None) -> tuple[int, int]:
    from PIL import Image

    if path is not None:
        try:
            with Image.open(path) as image:
                return image.height, image.width
        except (OSError, ValueError):
            pass
    return NOISE_SIZE, NOISE_SIZE  # missing or unreadable: the noise image stands in


def pooled_hidden(model, inputs) -> torch.Tensor:
    """Mean of the last hidden state over non-pad tokens, float32 (batch, hidden)."""
    out = model(**inputs)
    return masked_mean(out.last_hidden_state, inputs["attention_mask"])


def batch_inputs(processor, texts: list[str], images, device: torch.device, dtype: torch.dtype):
    """Left-padded model inputs for a batch of chats (and their images, if any)."""
    inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
    inputs = inputs.to(device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    return inputs


def encoder(model, processor, chats: list[str], dataset, modality: str, batch_size: int,
            device, dtype, bar=None):
    """`encode(indices) -> ((len, hidden) rows, notes)` for run_shards.

    Batches are length-sorted and left-padded; the notes of an image shard count the missing
    and unreadable images it replaced with the noise image.
    """

    @torch.no_grad()
    def encode(indices: np.ndarray) -> tuple[np.ndarray, dict]:
        if modality == "image":
            lengths = image_lengths(processor, dataset, indices)
        else:
            lengths = text_lengths(processor, [chats[i] for i in indices])
        report = ImageReport()
        rows = None
        for batch in length_sorted_batches(lengths, batch_size):
            items = indices[batch]
            images = None
            if modality == "image":
                images, got = load_images(dataset, items)
                report.add(got)
            texts = [chats[i] for i in items]
            vectors = pooled_hidden(model, batch_inputs(processor, texts, images, device, dtype))
            if rows is None:
                rows = np.zeros((len(indices), vectors.shape[1]), dtype=np.float32)
            rows[batch] = vectors.cpu().numpy()
            if bar is not None:
                bar.update(len(items))
        return rows, (report.counts() if modality == "image" else {})

    return encode


def reduce_modalities(raw: dict[str, np.ndarray], pca_dim: int) -> tuple[dict, dict]:
    """PCA to `pca_dim` fitted per modality (0 keeps the raw features)."""
    if not pca_dim:
        return raw, {m: {"raw_dim": int(raw[m].shape[1]), "dim": int(raw[m].shape[1])} for m in raw}
    out, summary = {}, {}
    for modality, matrix in raw.items():
        out[modality], summary[modality] = pca_reduce(matrix, pca_dim)
    return out, summary


class QwenVLExtractor(Extractor):
    """Qwen2.5-VL-7B-Instruct zero-shot (DESIGN: QwenVL), raw 3584-d kept as shards."""

    name = "qwenvl"
    code_version = 1
    defaults = {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "revision": "",
        "domain": "",  # filled from the data set config ("beauty", "toys", ...)
        **prompts.prompt_settings(),
        "min_pixels": 400,
        "max_pixels": 65536,
        "pca_dim": 768,
        "batch_size": 16,
        **RUN_DEFAULTS,
    }
    # pca_dim's upper bound depends on the data and the model (pooling.check_pca_dim, at extraction)
    rules = Extractor.rules | {"min_pixels": SIZE, "max_pixels": SIZE, "pca_dim": SIZE}
    relations = ((("min_pixels", "max_pixels"), lambda low, high: None if low <= high else
                  "min_pixels must not exceed max_pixels (the image sizes lie between them)"),)
    # The store leaves running settings out of the cache key, and the settings applied after
    # the raw shards (PCA) out of the raw-shard key.
    run_settings = RUN_SETTINGS
    post_settings = ("pca_dim",)
    work_dir: Path | None = None  # set by extractors.store: where raw shards live and resume

    def load(self, device, dtype):
        """(model, processor) for these settings; the SDA extractor overrides the model part."""
        s = self._settings
        folder = resolve_weights(s["model"], s["revision"], self.name)
        return load_model(folder, device, dtype), load_processor(folder, s["min_pixels"], s["max_pixels"])

    def extract(self, dataset, progress: bool = True) -> FeatureSet | None:
        """Features of every item; under torchrun only rank 0 returns them (others None)."""
        s = self._settings
        prompts.require_item_text(dataset)  # before loading gigabytes of weights
        ranks = process_ranks()
        device = resolve_device(s["device"], ranks)
        dtype = resolve_dtype(s["dtype"], device)
        model, processor = self.load(device, dtype)
        check_pca_dim(s["pca_dim"], dataset.n_items, model.config.text_config.hidden_size)
        text_chats, image_chat = item_chats(processor, dataset, s)
        chats = {"image": [image_chat] * dataset.n_items, "text": text_chats}
        encoders = {m: (lambda bar, m=m: encoder(model, processor, chats[m], dataset, m,
                                                 s["batch_size"], device, dtype, bar))
                    for m in MODALITIES}
        done = self.run_shards(dataset, encoders, ranks, progress)
        if done is None:
            return None
        raw, report = done
        reduced, pca = reduce_modalities(raw, s["pca_dim"])
        meta = {
            "model_folder": str(model.name_or_path), "device": str(device),
            "dtype": str(dtype).replace("torch.", ""), "processes": ranks.world,
            "prompts": prompts.prompt_rules() | {"example_text": text_chats[0], "image": image_chat},
            "pooling": "mean of the last hidden state over non-pad tokens, left padding",
            "pca": pca, "raw_dir": str(self.work_dir), "images": report.as_meta(),
        }
        return FeatureSet(reduced["image"], reduced["text"], meta)
