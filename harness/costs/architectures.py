"""The real architectures, built on torch's meta device from configs written in the repository.

configs/architectures/<name>.json hold the published config.json values of the three models the
paper profile loads; `build` instantiates the transformers class on `torch.device("meta")`, so
the shapes and parameter counts are the real ones while no weight is downloaded or allocated.
`Shape` reads what the FLOP formulas need from any instantiated model (meta or real), so the same
code costs the 7B model and the tiny test model.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from protocol.config import CONFIG_DIR
from protocol.errors import HarnessError

ARCH_DIR = CONFIG_DIR / "architectures"
# Hub id of each extractor's model -> its config file here.
ARCHITECTURES = {
    "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2.5-vl-7b-instruct",
    "openai/clip-vit-large-patch14": "clip-vit-large-patch14",
    "sentence-transformers/all-MiniLM-L6-v2": "all-minilm-l6-v2",
}


def load_config(name: str):
    """The transformers config of configs/architectures/<name>.json."""
    from transformers import AutoConfig

    path = ARCH_DIR / f"{name}.json"
    if not path.exists():
        raise HarnessError(f"{path} is missing; write the model's config.json values there "
                           f"(known: {', '.join(sorted(p.stem for p in ARCH_DIR.glob('*.json')))}).")
    values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    return AutoConfig.for_model(values.pop("model_type"), **values)


@functools.lru_cache(maxsize=None)
def build(name: str):
    """The full model of `name` (as published, LM head included) on the meta device."""
    import torch
    import transformers

    config = load_config(name)
    cls = getattr(transformers, config.architectures[0])
    with torch.device("meta"):
        return cls._from_config(config)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def linear_params(module) -> int:
    """Weights of the nn.Linear layers under `module`: each costs 2 FLOPs a token (a bias add is
    not a multiply-add; FlopCounterMode does not count it either)."""
    from torch import nn

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


@dataclass(frozen=True)
class QwenVLShape:
    """What the FLOP and memory formulas need of a Qwen2.5-VL backbone."""

    backbone: int          # parameters the extractor loads (Qwen2_5_VLModel: no LM head)
    lm_linear: int         # Linear parameters of the language model's decoder layers
    lm_layers: int
    hidden: int
    kv_dim: int            # key/value width (grouped-query attention)
    intermediate: int
    vision_patch_embed: int  # Conv3d parameters: one patch of 3 x temporal x patch x patch values
    vision_linear: int     # Linear parameters of the vision blocks (per patch)
    merger_linear: int     # Linear parameters of the patch merger (per merged token = 4 patches)
    vision_hidden: int
    vision_depth: int
    full_attention_blocks: int
    window_patches: int    # patches a windowed vision block attends within
    patch: int
    merge: int


def qwen_shape(model) -> QwenVLShape:
    """The shape of a Qwen2.5-VL model (ForConditionalGeneration or the bare Qwen2_5_VLModel)."""
    backbone = getattr(model, "model", model)  # ForConditionalGeneration holds the backbone as .model
    config = backbone.config
    text, vision = config.text_config, config.vision_config
    visual, language = backbone.visual, backbone.language_model
    head_dim = text.hidden_size // text.num_attention_heads
    window = (vision.window_size // vision.patch_size) ** 2  # 112 px / 14 px = 8 patches a side
    return QwenVLShape(
        backbone=n_params(backbone), lm_linear=linear_params(language.layers), lm_layers=text.num_hidden_layers,
        hidden=text.hidden_size, kv_dim=text.num_key_value_heads * head_dim,
        intermediate=text.intermediate_size, vision_patch_embed=n_params(visual.patch_embed),
        vision_linear=linear_params(visual.blocks), merger_linear=linear_params(visual.merger),
        vision_hidden=vision.hidden_size, vision_depth=vision.depth,
        full_attention_blocks=len(vision.fullatt_block_indexes), window_patches=window,
        patch=vision.patch_size, merge=vision.spatial_merge_size)


@dataclass(frozen=True)
class EncoderShape:
    """A plain transformer encoder (CLIP's towers, MiniLM): Linear params per token, attention."""

    linear: int
    layers: int
    hidden: int
    extra: int = 0  # per-input FLOP-bearing parameters outside the layers (a patch embedding)


def clip_shapes(model) -> dict[str, EncoderShape]:
    vision, text = model.vision_model, model.text_model
    vc, tc = model.config.vision_config, model.config.text_config
    return {"image": EncoderShape(linear_params(vision.encoder) + linear_params(model.visual_projection),
                                  vc.num_hidden_layers, vc.hidden_size, n_params(vision.embeddings.patch_embedding)),
            "text": EncoderShape(linear_params(text.encoder) + linear_params(model.text_projection),
                                 tc.num_hidden_layers, tc.hidden_size)}


def encoder_shape(model) -> EncoderShape:
    """A BERT-style encoder (all-MiniLM-L6-v2)."""
    return EncoderShape(linear_params(model.encoder), model.config.num_hidden_layers, model.config.hidden_size)


def lora_params(shape: QwenVLShape, rank: int) -> int:
    """Low-rank weights on the 7 Linears of every decoder layer: r (d_in + d_out) each
    (docs/sda.md; 20,185,088 for the 7B model at r = 8)."""
    d, kv, f = shape.hidden, shape.kv_dim, shape.intermediate
    per_layer = rank * ((d + d) * 2 + (d + kv) * 2 + (d + f) * 3)  # q, o; k, v; gate, up, down
    return per_layer * shape.lm_layers
