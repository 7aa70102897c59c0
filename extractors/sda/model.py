"""The adapted backbone: MoDA (or plain LoRA, the "w/o MoDA" ablation) on every language-model Linear.

Both adapters go through peft's LoRA tuner (MoDA as a registered LoRA variant), so target
matching, freezing, saving and loading are peft's for both. The modality of each sequence is
read from its input ids (an image prompt holds image tokens, a text prompt none) by a hook on
the input embedding, which every forward passes exactly once, outside the checkpointed decoder
layers; so callers (training, extraction, analysis) pass ordinary model inputs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn

from extractors.sda.config import LANGUAGE_MODEL_LINEARS, MoDAConfig, load_config
from extractors.sda.layer import moda_layers, set_modality

IMAGE, TEXT = 0, 1  # modality ids: the gate's embedding rows
A_STD = 0.01  # A ~ N(0, 0.01²) for LoRA and MoDA alike, so the ablation differs only by the gate
ADAPTERS = ("moda", "lora")


def peft_config(settings: dict) -> LoraConfig:
    """The peft config for the `adapter`, `rank`, `alpha`, `dropout`, `experts`, `gate_dim` settings."""
    common = dict(r=settings["rank"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                  target_modules=LANGUAGE_MODEL_LINEARS)
    if settings["adapter"] == "lora":
        return LoraConfig(**common)
    # MoDA: the adapter kind and experts dividing the rank were checked with the extractor's
    # settings (extractors.sda.train.RULES and RELATIONS)
    return MoDAConfig(**common, num_experts=settings["experts"], gate_dim=settings["gate_dim"])


def add_adapter(model: nn.Module, settings: dict) -> PeftModel:
    """A fresh trainable adapter on `model` (B = 0, so outputs equal the base model's)."""
    adapted = get_peft_model(model, peft_config(settings))
    for layer in adapted.modules():
        if isinstance(layer, LoraLayer):
            nn.init.normal_(layer.lora_A["default"].weight, std=A_STD)
    return route_modality(adapted)


def load_adapter(model: nn.Module, adapter_dir: Path, trainable: bool = False) -> PeftModel:
    """The adapter saved in `adapter_dir` on `model` (MoDA or LoRA, as it was trained)."""
    adapted = PeftModel.from_pretrained(model, str(adapter_dir), config=load_config(adapter_dir),
                                        is_trainable=trainable)
    return route_modality(adapted)


def modality_ids(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """(batch, seq) ids -> (batch,): IMAGE for sequences holding image tokens, else TEXT."""
    return torch.where((input_ids == image_token_id).any(dim=1), IMAGE, TEXT)


def route_modality(adapted: PeftModel) -> PeftModel:
    """Set each forward's modality ids on the MoDA layers from the input ids (LoRA needs none)."""
    if moda_layers(adapted):
        base = adapted.get_base_model()
        image_token_id = base.config.image_token_id

        def hook(_embedding, args):
            set_modality(adapted, modality_ids(args[0], image_token_id))

        base.get_input_embeddings().register_forward_pre_hook(hook)
    return adapted
